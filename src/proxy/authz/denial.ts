import type { AuthzDecision, RuleRef } from '../../policy/server/authorization/evaluate';

/**
 * How a denial looks to the client and in telemetry, the way Istio's proxies show it, so
 * that what users search for finds it: Envoy's RBAC filter answers 403 with this body (gRPC:
 * grpc-status 7, PERMISSION_DENIED, with it as the message), and names the policy in its
 * response code details (`%RESPONSE_CODE_DETAILS%`, for connections
 * `%CONNECTION_TERMINATION_DETAILS%`) as Istio spells policies: ns[..]-policy[..]-rule[..].
 */
export const RBAC_DENIED_BODY = 'RBAC: access denied';
export const GRPC_PERMISSION_DENIED = 7;

/**
 * Envoy has no response flag for an RBAC denial (its 30 flags: UH, UF, ..., UAEX is the
 * external authorizer's): a denied request carries "-" and the 403, and the details say
 * why. nodemesh does the same, so that dashboards built on Istio's metrics read the same.
 */
export const RBAC_RESPONSE_FLAG = '-';

/** The policy label of nodemesh_authz_denied_total: the policy, or "none" when no ALLOW rule matched (Envoy: matched_policy[none]). */
export function deniedBy(decision: AuthzDecision): string {
  return decision.decidedBy?.policy ?? 'none';
}

function istioPolicyName(ref: RuleRef): string {
  const slash = ref.policy.indexOf('/');
  return `ns[${ref.policy.slice(0, slash)}]-policy[${ref.policy.slice(slash + 1)}]-rule[${ref.ruleIndex}]`;
}

/** "rbac_access_denied_matched_policy[ns[demo]-policy[deny-admin]-rule[0]]", or [none]. */
export function rbacDetails(decision: AuthzDecision): string {
  return `rbac_access_denied_matched_policy[${decision.decidedBy ? istioPolicyName(decision.decidedBy) : 'none'}]`;
}

/** The AUDIT policies that matched, "ns/name#rule" joined with ",", for the access log; undefined when none. */
export function auditedPolicies(decision: AuthzDecision): string | undefined {
  return decision.audited.length === 0 ? undefined : decision.audited.map((r) => `${r.policy}#${r.ruleIndex}`).join(',');
}
