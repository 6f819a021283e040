import type { OtherObject } from '../../../config/objects';
import { creationTime } from '../../../config/object-age';
import { PolicyFields } from '../../../config/policy-fields';
import { parseEach } from '../../../config/parse-each';
import { isRecord, type FieldProblem } from '../../../config/validation';
import { parseLabelSelector } from './label-selector';
import { compiledRule, type Clause, type CompiledPolicy, type CompiledRule, type PolicyScope } from './model';
import type { ParsedAuthorizationPolicies } from './parse-istio-authorization-policy';
import { items, portList } from './rule-fields';

/**
 * Gateway API's mesh authorization policy, GEP-3779 "Identity Based Authz for East-West
 * Traffic" (gateway-api.sigs.k8s.io/geps/gep-3779; read in kubernetes-sigs/gateway-api
 * geps/gep-3779/index.md, status Implementable). The GEP names the type AuthorizationPolicy
 * and says it "is starting as Experimental with X-prefix"; Gateway API's experimental
 * resources live in `gateway.networking.x-k8s.io/v1alpha1` with an X in front of the kind
 * (XMesh, XBackendTrafficPolicy, XListenerSet), so nodemesh serves it as
 * `gateway.networking.x-k8s.io/v1alpha1` `XAuthorizationPolicy`. No CRD of it is published
 * yet; the schema is the GEP's Go types.
 *
 * What the GEP defines, and how it compiles to the shared model:
 * - spec.targetRefs (required): `{ group: "", kind: Pod, selector }` (a label selector; an
 *   empty one selects every pod of the namespace; no name; the only targetRef), or
 *   references by name ("multiple refs as long as Kind isn't Pod"): nodemesh accepts
 *   Services (their selected pods, as for Istio's targetRefs) and rejects other kinds;
 * - spec.action (required): ALLOW only; a request is allowed iff it matches a rule of
 *   an ALLOW policy targeting the workload, so a policy without rules allows nothing;
 * - spec.enforcementLevel (required): Network only (L4; Application is reserved);
 * - spec.rules[].sources: `{ type: ServiceAccount, serviceAccount: { namespace?, name } }`
 *   (name "*": every service account of the namespace; the mesh's trust domain) or
 *   `{ type: SPIFFE, spiffe: "spiffe://..." }`; omitted: any source; `[]`: no source;
 * - spec.rules[].networkAttributes.ports: destination ports; omitted: any port.
 * A policy never leaves its namespace (the GEP defers cluster-wide policy to another kind),
 * so in the mesh root namespace it is not mesh-wide.
 */

export const MESH_AUTHORIZATION_GROUP = 'gateway.networking.x-k8s.io';
export const MESH_AUTHORIZATION_VERSION = 'v1alpha1';
export const MESH_AUTHORIZATION_KIND = 'XAuthorizationPolicy';

export function isMeshAuthorizationPolicy(o: Pick<OtherObject, 'apiVersion' | 'kind'>): boolean {
  return o.kind === MESH_AUTHORIZATION_KIND && o.apiVersion.startsWith(`${MESH_AUTHORIZATION_GROUP}/`);
}

export function parseMeshAuthorizationPolicies(others: readonly OtherObject[]): ParsedAuthorizationPolicies {
  const { valid: policies, rejected } = parseEach(others, MESH_AUTHORIZATION_KIND, isMeshAuthorizationPolicy, parseOne);
  return { policies, rejected };
}

function parseOne(other: OtherObject): CompiledPolicy | FieldProblem[] {
  const served = `${MESH_AUTHORIZATION_GROUP}/${MESH_AUTHORIZATION_VERSION}`;
  if (other.apiVersion !== served) return [{ path: 'apiVersion', problem: `"${other.apiVersion}" is not served; use ${served}` }];
  const namespace = other.namespace ?? 'default';
  const c = new PolicyFields();
  const meta = isRecord(other.object.metadata) ? other.object.metadata : {};
  const created = creationTime(c, meta.creationTimestamp);
  const spec = c.mapping(other.object.spec ?? {}, 'spec', ['targetRefs', 'action', 'rules', 'enforcementLevel']);
  if (!spec) return c.list;
  const scope = parseTargets(c, spec.targetRefs);
  parseAction(c, spec.action);
  parseEnforcementLevel(c, spec.enforcementLevel);
  const rules = items(c, spec.rules, 'spec.rules', 'rules ({ sources, networkAttributes })').map((r, i) => parseRule(c, r, `spec.rules[${i}]`, namespace));
  if (!c.ok || scope === undefined) return c.list;
  return { kind: 'XAuthorizationPolicy', namespace, name: other.name, file: other.file, createdMs: created.ms, action: 'ALLOW', scope, rules: rules as CompiledRule[] };
}

function parseAction(c: PolicyFields, raw: unknown): void {
  const action = c.string(raw, 'spec.action');
  if (action === undefined) return void c.fail('spec.action', 'required: ALLOW (the only action GEP-3779 defines)');
  if (action === 'ALLOW') return;
  const hint = action.toUpperCase() === 'ALLOW' ? '; write it in capitals: ALLOW' : action.toUpperCase() === 'DENY' ? '; GEP-3779 has no DENY: write an Istio AuthorizationPolicy (security.istio.io/v1) with action: DENY' : '';
  c.fail('spec.action', `"${action}" is not an action of GEP-3779 (use ALLOW)${hint}`);
}

function parseEnforcementLevel(c: PolicyFields, raw: unknown): void {
  const level = c.string(raw, 'spec.enforcementLevel');
  if (level === 'Network') return;
  c.fail('spec.enforcementLevel', level === undefined ? 'required: Network (GEP-3779 enforces identities and ports only)' : `"${level}" is not supported (use Network; Application, L7, is reserved by GEP-3779 for later)`);
}

function parseTargets(c: PolicyFields, raw: unknown): PolicyScope | undefined {
  const refs = items(c, raw, 'spec.targetRefs', 'targets ({ group: "", kind: Pod, selector: {...} })');
  if (refs.length === 0) return c.fail('spec.targetRefs', 'required: at least one target, e.g. [{ group: "", kind: Pod, selector: { matchLabels: { app: web } } }] ("selector: {}" for every pod of the namespace)');
  const names: string[] = [];
  let scope: PolicyScope | undefined;
  refs.forEach((r, i) => {
    const path = `spec.targetRefs[${i}]`;
    const ref = c.mapping(r, path, ['group', 'kind', 'name', 'selector']);
    if (!ref) return;
    const group = c.string(ref.group, `${path}.group`) ?? '';
    const kind = c.string(ref.kind, `${path}.kind`);
    const name = c.string(ref.name, `${path}.name`);
    const core = group === '' || group === 'core';
    if (core && kind === 'Pod') {
      if (refs.length > 1) return void c.fail(path, 'a Pod target must be the only targetRef (GEP-3779); put the other targets in another policy');
      if (name !== undefined && name !== '') return void c.fail(`${path}.name`, 'must be empty for kind Pod: pods are chosen by the selector');
      if (ref.selector === undefined || ref.selector === null) return void c.fail(`${path}.selector`, 'required for kind Pod (a label selector; {} selects every pod of the namespace)');
      const selector = parseLabelSelector(c, ref.selector, `${path}.selector`);
      if (selector) scope = { kind: 'selector', selector, rootNamespaceIsMesh: false };
      return;
    }
    if (core && kind === 'Service') {
      if (ref.selector !== undefined && ref.selector !== null) return void c.fail(`${path}.selector`, 'may only be set with kind Pod; remove it, or target kind Pod');
      if (name === undefined || name === '') return void c.fail(`${path}.name`, 'required (the name of a Service in the policy\'s namespace)');
      names.push(name);
      return;
    }
    const what = kind === undefined ? 'required' : `${group === '' ? '' : `${group}/`}${kind} is not supported`;
    c.fail(`${path}.kind`, `${what}: target kind Pod (group "") with a selector, or a Service by name; nodemesh enforces at the destination's node proxy and would ignore a policy on anything else`);
  });
  return scope ?? (names.length > 0 ? { kind: 'services', names } : undefined);
}

function parseRule(c: PolicyFields, raw: unknown, path: string, namespace: string): CompiledRule | undefined {
  const rule = raw === null ? {} : c.mapping(raw, path, ['sources', 'networkAttributes']);
  if (!rule) return undefined;
  // Omitted sources: any source; an empty list: none ("allow nothing"), as the GEP says.
  const sources = rule.sources === undefined || rule.sources === null ? undefined : items(c, rule.sources, `${path}.sources`, 'sources ({ type, serviceAccount | spiffe })');
  const from = sources?.map((s, i) => parseSource(c, s, `${path}.sources[${i}]`, namespace)).filter((s): s is Clause[] => s !== undefined);
  let to: Clause[][] | undefined;
  if (rule.networkAttributes !== undefined && rule.networkAttributes !== null) {
    const at = `${path}.networkAttributes`;
    const attributes = c.mapping(rule.networkAttributes, at, ['ports']);
    const ports = attributes ? portList(c, attributes.ports, `${at}.ports`) : [];
    if (ports.length > 0) to = [[{ attribute: 'destination.port', values: ports, notValues: [] }]];
  }
  return compiledRule(from, to, []);
}

function parseSource(c: PolicyFields, raw: unknown, path: string, namespace: string): Clause[] | undefined {
  const s = c.mapping(raw, path, ['type', 'serviceAccount', 'spiffe']);
  if (!s) return undefined;
  const type = c.string(s.type, `${path}.type`);
  if (type === 'SPIFFE') {
    if (s.serviceAccount !== undefined) return c.fail(`${path}.serviceAccount`, 'must not be set with type SPIFFE; remove it, or use type ServiceAccount');
    const id = c.string(s.spiffe, `${path}.spiffe`);
    if (id === undefined) return c.fail(`${path}.spiffe`, 'required with type SPIFFE (e.g. "spiffe://cluster.local/ns/demo/sa/web")');
    const rest = id.startsWith('spiffe://') ? id.slice('spiffe://'.length) : undefined;
    if (rest === undefined || !/^[^/]+\/.+/.test(rest)) return c.fail(`${path}.spiffe`, `"${id}" is not a SPIFFE ID: write spiffe://<trust domain>/<path>, e.g. spiffe://cluster.local/ns/demo/sa/web`);
    return [{ attribute: 'source.principal', values: [{ kind: 'exact', value: rest }], notValues: [] }];
  }
  if (type === 'ServiceAccount') {
    if (s.spiffe !== undefined) return c.fail(`${path}.spiffe`, 'must not be set with type ServiceAccount; remove it, or use type SPIFFE');
    const at = `${path}.serviceAccount`;
    const account = c.mapping(s.serviceAccount, at, ['namespace', 'name']);
    if (!account) return c.fail(at, 'required with type ServiceAccount ({ namespace, name }; name "*" for every service account of the namespace)');
    const ns = c.string(account.namespace, `${at}.namespace`) ?? namespace;
    const name = c.string(account.name, `${at}.name`);
    if (name === undefined || name === '') return c.fail(`${at}.name`, 'required (a service account name, or "*" for all of the namespace)');
    if (name !== '*' && name.includes('*')) return c.fail(`${at}.name`, `"${name}": only "*" alone is a wildcard (every service account of the namespace)`);
    return [{ attribute: 'source.serviceAccount', values: [{ namespace: ns, name }], notValues: [] }];
  }
  return c.fail(`${path}.type`, `${type === undefined ? 'required' : `"${type}" is not a source type`} (use ServiceAccount or SPIFFE)`);
}
