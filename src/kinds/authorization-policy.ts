import { SECURITY_GROUP } from '../policy/server/peer-authentication';
import { AUTHORIZATION_POLICY_KIND as KIND_NAME, parseIstioAuthorizationPolicies } from '../policy/server/authorization/parse-istio-authorization-policy';
import { AuthorizationPolicies } from '../policy/server/authorization/policy-set';
import type { ObjectKind } from './object-kind';

/**
 * Istio's AuthorizationPolicy (security.istio.io/v1; v1beta1 is read alike): ALLOW, DENY
 * and AUDIT rules on workloads. Parsed by the source, once per update; its policies join
 * the GEP-3779 ones in the `authorization` slot (config-slots.ts), where one evaluator
 * judges both.
 */
export const AUTHORIZATION_POLICY_KIND: ObjectKind<AuthorizationPolicies> = {
  name: KIND_NAME,
  resource: { group: SECURITY_GROUP, version: 'v1', kind: KIND_NAME, plural: 'authorizationpolicies', namespaced: true, optional: true, hasStatus: true },
  watched: true,
  slot: 'authorization',
  parse: (others) => {
    const { policies, rejected } = parseIstioAuthorizationPolicies(others);
    return { value: new AuthorizationPolicies(policies), rejected };
  },
  status: 'accepted-condition',
};
