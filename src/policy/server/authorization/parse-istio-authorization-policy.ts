import type { OtherObject } from '../../../config/objects';
import { creationTime } from '../../../config/object-age';
import { PolicyFields } from '../../../config/policy-fields';
import { parseEach } from '../../../config/parse-each';
import { isRecord, type FieldProblem, type RejectedObject } from '../../../config/validation';
import { SECURITY_GROUP } from '../peer-authentication';
import { parseWorkloadSelector } from '../workload-selector';
import { compiledRule, type AuthzAction, type Clause, type CompiledPolicy, type CompiledRule, type PolicyScope, type ServiceAccountRef } from './model';
import { parseCondition } from './parse-istio-condition';
import { blockList, items, matchList, matchOf, portList, stringList } from './rule-fields';
import type { StringMatch } from './string-match';

/**
 * Reads Istio's AuthorizationPolicy (security.istio.io/v1, and v1beta1, the same schema)
 * into the compiled model. Nothing a policy says is ever ignored: an ignored DENY clause
 * would be a hole, and an ignored ALLOW clause would widen access. So an unknown field, an
 * unsupported field or condition key, or an action nodemesh cannot carry out rejects the
 * whole policy, with the field and what to write instead (status Accepted=False).
 *
 * Semantics taken from Istio's reference (istio.io/latest/docs/reference/config/security/
 * authorization-policy/, the comments of istio/api security/v1beta1/authorization_policy.proto):
 * - `spec: {}` is an ALLOW policy without rules. Rules "not set" never match, so it
 *   allows nothing: Istio's own "allow-nothing" example, which denies every request to the
 *   workloads in scope. The same for `rules: []`, and for a selector with no rules.
 *   A DENY or AUDIT policy without rules never matches, so it does nothing.
 * - A rule `{}` always matches (Istio's "allow-all" example: `rules: [{}]`).
 * - Scope: without selector and targetRefs, every workload of the namespace, and of the
 *   whole mesh in the root namespace; a selector in the root namespace selects in every
 *   namespace ("the selector will additionally match with workloads in all namespaces").
 * - An empty list (`from: []`, `principals: []`) is the same as an unset one (proto3).
 */

export const AUTHORIZATION_POLICY_KIND = 'AuthorizationPolicy';
export const AUTHORIZATION_POLICY_VERSIONS = ['v1', 'v1beta1'] as const;
const ACTIONS = ['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'] as const;
const DRY_RUN_ANNOTATION = 'istio.io/dry-run';

export interface ParsedAuthorizationPolicies {
  policies: CompiledPolicy[];
  rejected: RejectedObject[];
}

export function isIstioAuthorizationPolicy(o: Pick<OtherObject, 'apiVersion' | 'kind'>): boolean {
  return o.kind === AUTHORIZATION_POLICY_KIND && o.apiVersion.startsWith(`${SECURITY_GROUP}/`);
}

export function parseIstioAuthorizationPolicies(others: readonly OtherObject[]): ParsedAuthorizationPolicies {
  const { valid: policies, rejected } = parseEach(others, AUTHORIZATION_POLICY_KIND, isIstioAuthorizationPolicy, parseOne);
  return { policies, rejected };
}

function parseOne(other: OtherObject): CompiledPolicy | FieldProblem[] {
  const version = other.apiVersion.slice(SECURITY_GROUP.length + 1);
  if (!(AUTHORIZATION_POLICY_VERSIONS as readonly string[]).includes(version)) {
    return [{ path: 'apiVersion', problem: `"${other.apiVersion}" is not served; use ${SECURITY_GROUP}/v1` }];
  }
  const namespace = other.namespace ?? 'default';
  const c = new PolicyFields();
  const meta = isRecord(other.object.metadata) ? other.object.metadata : {};
  const created = creationTime(c, meta.creationTimestamp);
  const annotations = isRecord(meta.annotations) ? meta.annotations : {};
  if (annotations[DRY_RUN_ANNOTATION] === 'true') {
    // Istio evaluates a dry-run policy without enforcing it; nodemesh has no shadow mode,
    // and enforcing what the owner meant only to try out could cut traffic off.
    c.fail(`metadata.annotations.${DRY_RUN_ANNOTATION}`, 'not supported: nodemesh has no dry-run mode and would enforce the policy; remove the annotation to enforce it, or delete the policy');
  }
  const raw = other.object.spec;
  const spec = raw === undefined || raw === null ? {} : c.mapping(raw, 'spec', ['selector', 'targetRef', 'targetRefs', 'action', 'provider', 'rules']);
  if (!spec) return c.list;
  const action = parseAction(c, spec.action, spec.provider);
  const scope = parseScope(c, spec, namespace);
  const rules = items(c, spec.rules, 'spec.rules', 'rules ({ from, to, when })').map((r, i) => parseRule(c, r, `spec.rules[${i}]`, namespace));
  if (!c.ok || action === undefined || scope === undefined || rules.some((r) => r === undefined)) return c.list;
  return { kind: 'AuthorizationPolicy', namespace, name: other.name, file: other.file, createdMs: created.ms, action, scope, rules: rules as CompiledRule[] };
}

function parseAction(c: PolicyFields, raw: unknown, provider: unknown): AuthzAction | undefined {
  const action = raw === undefined || raw === null ? 'ALLOW' : c.string(raw, 'spec.action');
  if (action === undefined) return undefined;
  if (!(ACTIONS as readonly string[]).includes(action)) {
    const hint = (ACTIONS as readonly string[]).includes(action.toUpperCase()) ? `; write it in capitals: ${action.toUpperCase()}` : '';
    return c.fail('spec.action', `"${action}" is not an action (use ALLOW, DENY or AUDIT)${hint}`);
  }
  if (action === 'CUSTOM') return c.fail('spec.action', 'not supported: nodemesh has no external authorizer; a CUSTOM policy would be ignored');
  if (provider !== undefined && provider !== null) return c.fail('spec.provider', 'applies only to action CUSTOM, which nodemesh does not support; remove it');
  return action as AuthzAction;
}

function parseScope(c: PolicyFields, spec: Record<string, unknown>, namespace: string): PolicyScope | undefined {
  if (spec.targetRef !== undefined && spec.targetRef !== null) {
    c.fail('spec.targetRef', 'write the target as a list: spec.targetRefs: [{ group: "", kind: Service, name: ... }]');
  }
  const refs = items(c, spec.targetRefs, 'spec.targetRefs', 'targets ({ group: "", kind: Service, name })');
  const hasSelector = spec.selector !== undefined && spec.selector !== null;
  if (refs.length > 0 && hasSelector) {
    c.fail('spec.targetRefs', 'cannot be set together with spec.selector (Istio allows one of them); keep the selector to choose pods by label, or the targetRefs to choose the pods of a Service');
    return undefined;
  }
  if (refs.length > 0) {
    const names = refs.map((r, i) => parseServiceTarget(c, r, `spec.targetRefs[${i}]`, namespace));
    return names.every((n) => n !== undefined) ? { kind: 'services', names: names as string[] } : undefined;
  }
  const matchLabels = parseWorkloadSelector(c, spec.selector);
  if (matchLabels === undefined) return { kind: 'all', rootNamespaceIsMesh: true };
  return { kind: 'selector', selector: { matchLabels, matchExpressions: [] }, rootNamespaceIsMesh: true };
}

/** A targetRef to a Service of the policy's namespace: the pods the Service selects. */
function parseServiceTarget(c: PolicyFields, raw: unknown, path: string, namespace: string): string | undefined {
  const ref = c.mapping(raw, path, ['group', 'kind', 'name', 'namespace']);
  if (!ref) return undefined;
  const group = c.string(ref.group, `${path}.group`) ?? '';
  const kind = c.string(ref.kind, `${path}.kind`);
  const name = c.string(ref.name, `${path}.name`);
  const ns = c.string(ref.namespace, `${path}.namespace`);
  if (kind !== 'Service' || (group !== '' && group !== 'core')) {
    const what = kind === undefined ? 'required' : `${group === '' ? '' : `${group}/`}${kind} is not supported`;
    return c.fail(`${path}.kind`, `${what}: nodemesh enforces at the destination's node proxy and has no gateways or waypoints, so a policy on anything but a Service would be ignored; target a Service (group: "", kind: Service) or select pods with spec.selector`);
  }
  if (name === undefined || name === '') return c.fail(`${path}.name`, 'required (the name of a Service in the policy\'s namespace)');
  if (ns !== undefined && ns !== namespace) return c.fail(`${path}.namespace`, `"${ns}" is not the policy's namespace (${namespace}): a policy targets Services of its own namespace only; move the policy or remove the field`);
  return name;
}

function parseRule(c: PolicyFields, raw: unknown, path: string, namespace: string): CompiledRule | undefined {
  const rule = raw === null ? {} : c.mapping(raw, path, ['from', 'to', 'when']);
  if (!rule) return undefined;
  const fromItems = items(c, rule.from, `${path}.from`, 'sources ({ source: {...} })');
  const toItems = items(c, rule.to, `${path}.to`, 'operations ({ operation: {...} })');
  const from = fromItems.map((f, i) => parseFrom(c, f, `${path}.from[${i}]`, namespace));
  const to = toItems.map((t, i) => parseTo(c, t, `${path}.to[${i}]`));
  const when = items(c, rule.when, `${path}.when`, 'conditions ({ key, values })').map((w, i) => parseCondition(c, w, `${path}.when[${i}]`));
  if (when.some((w) => w === undefined)) return undefined;
  // proto3: an empty list is an unset one, "any source" / "any operation".
  return compiledRule(from.length === 0 ? undefined : from, to.length === 0 ? undefined : to, when as Clause[]);
}

function parseFrom(c: PolicyFields, raw: unknown, path: string, namespace: string): Clause[] {
  const from = raw === null ? {} : c.mapping(raw, path, ['source']);
  if (!from || from.source === undefined || from.source === null) return [];
  const at = `${path}.source`;
  const s = c.mapping(from.source, at, [
    'principals',
    'notPrincipals',
    'requestPrincipals',
    'notRequestPrincipals',
    'namespaces',
    'notNamespaces',
    'serviceAccounts',
    'notServiceAccounts',
    'trustDomains',
    'notTrustDomains',
    'ipBlocks',
    'notIpBlocks',
    'remoteIpBlocks',
    'notRemoteIpBlocks',
  ]);
  if (!s) return [];
  for (const field of ['requestPrincipals', 'notRequestPrincipals'] as const) {
    if (stringList(c, s[field], `${at}.${field}`).length > 0) {
      c.fail(`${at}.${field}`, 'not supported: nodemesh validates no JWTs (no RequestAuthentication), so it cannot know a request principal; match the peer with principals, namespaces or serviceAccounts instead');
    }
  }
  const hasAccounts = s.serviceAccounts !== undefined || s.notServiceAccounts !== undefined;
  if (hasAccounts && (s.principals !== undefined || s.notPrincipals !== undefined || s.namespaces !== undefined || s.notNamespaces !== undefined)) {
    c.fail(`${at}.serviceAccounts`, 'cannot be set together with principals or namespaces (Istio refuses it); use one form per source, or list two sources');
  }
  const clauses: Clause[] = [];
  push(clauses, { attribute: 'source.principal', values: matchList(c, s.principals, `${at}.principals`), notValues: matchList(c, s.notPrincipals, `${at}.notPrincipals`) });
  push(clauses, { attribute: 'source.namespace', values: matchList(c, s.namespaces, `${at}.namespaces`), notValues: matchList(c, s.notNamespaces, `${at}.notNamespaces`) });
  push(clauses, { attribute: 'source.trustDomain', values: matchList(c, s.trustDomains, `${at}.trustDomains`), notValues: matchList(c, s.notTrustDomains, `${at}.notTrustDomains`) });
  push(clauses, {
    attribute: 'source.serviceAccount',
    values: accountList(c, s.serviceAccounts, `${at}.serviceAccounts`, namespace),
    notValues: accountList(c, s.notServiceAccounts, `${at}.notServiceAccounts`, namespace),
  });
  push(clauses, { attribute: 'source.ip', values: blockList(c, s.ipBlocks, `${at}.ipBlocks`), notValues: blockList(c, s.notIpBlocks, `${at}.notIpBlocks`) });
  // remoteIpBlocks: Istio takes remote.ip from X-Forwarded-For or PROXY protocol only when
  // numTrustedProxies says which hops to trust; nodemesh trusts no forwarding header, so
  // the remote address is the peer's address, the same as source.ip (Envoy with no trusted
  // hops does the same). A separate clause keeps both lists ANDed, as Istio does.
  push(clauses, { attribute: 'source.ip', values: blockList(c, s.remoteIpBlocks, `${at}.remoteIpBlocks`), notValues: blockList(c, s.notRemoteIpBlocks, `${at}.notRemoteIpBlocks`) });
  return clauses;
}

function parseTo(c: PolicyFields, raw: unknown, path: string): Clause[] {
  const to = raw === null ? {} : c.mapping(raw, path, ['operation']);
  if (!to || to.operation === undefined || to.operation === null) return [];
  const at = `${path}.operation`;
  const o = c.mapping(to.operation, at, ['hosts', 'notHosts', 'ports', 'notPorts', 'methods', 'notMethods', 'paths', 'notPaths']);
  if (!o) return [];
  const clauses: Clause[] = [];
  push(clauses, { attribute: 'request.host', values: matchList(c, o.hosts, `${at}.hosts`, true), notValues: matchList(c, o.notHosts, `${at}.notHosts`, true) });
  push(clauses, { attribute: 'destination.port', values: portList(c, o.ports, `${at}.ports`), notValues: portList(c, o.notPorts, `${at}.notPorts`) });
  push(clauses, { attribute: 'request.method', values: matchList(c, o.methods, `${at}.methods`), notValues: matchList(c, o.notMethods, `${at}.notMethods`) });
  push(clauses, { attribute: 'request.path', values: pathList(c, o.paths, `${at}.paths`), notValues: pathList(c, o.notPaths, `${at}.notPaths`) });
  return clauses;
}

/** Paths; Envoy's URI templates (`{*}`, `{**}`) are not implemented, and a literal "{" would never match what the author meant. */
function pathList(c: PolicyFields, raw: unknown, path: string): StringMatch[] {
  return stringList(c, raw, path).flatMap((p, i) => {
    if (!p.includes('{') && !p.includes('}')) return matchOf(c, p, `${path}[${i}]`) ?? [];
    c.fail(`${path}[${i}]`, `"${p}": path templates ({*}, {**}) are not supported by nodemesh; write a prefix ("/foo/*") or list the paths`);
    return [];
  });
}

/** `<namespace>/<serviceaccount>`, or `<serviceaccount>` of the policy's namespace; no wildcards (Istio). */
function accountList(c: PolicyFields, raw: unknown, path: string, namespace: string): ServiceAccountRef[] {
  const out: ServiceAccountRef[] = [];
  stringList(c, raw, path).forEach((text, i) => {
    const parts = text.split('/');
    const valid = parts.length <= 2 && parts.every((p) => /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(p));
    if (text.includes('*')) return void c.fail(`${path}[${i}]`, `"${text}": no wildcard is allowed in serviceAccounts; list each one as namespace/name, or use namespaces: ["${parts[0]}"]`);
    if (!valid) return void c.fail(`${path}[${i}]`, `"${text}" is not a service account: write <namespace>/<name> (e.g. "demo/web") or <name> of the policy's namespace`);
    out.push(parts.length === 2 ? { namespace: parts[0]!, name: parts[1]! } : { namespace, name: parts[0]! });
  });
  return out;
}

/** Adds a clause that constrains something (values or notValues listed). */
function push(clauses: Clause[], clause: Clause): void {
  if (clause.values.length > 0 || clause.notValues.length > 0) clauses.push(clause);
}
