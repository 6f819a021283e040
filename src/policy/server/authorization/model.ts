import type { IpBlock } from './ip-block';
import type { LabelSelector } from './label-selector';
import type { StringMatch } from './string-match';

/**
 * The one compiled form of authorization that both policy APIs become: Istio's
 * AuthorizationPolicy (security.istio.io) and Gateway API's mesh authorization policy
 * (GEP-3779). The evaluator (evaluate.ts) reads only this, so the two APIs cannot drift
 * apart in how a request is judged.
 *
 * A policy holds rules; a rule is `from` AND `to` AND `when`; `from` and `to` are lists of
 * alternatives (OR), each alternative a list of clauses (AND); a clause tests one request
 * attribute against `values` (any may match; none listed = no constraint) and `notValues`
 * (none may match). Istio's `principals` + `notPrincipals` of one source, and a `when`
 * condition with `values` + `notValues`, are each one clause.
 */

export type AuthzAction = 'ALLOW' | 'DENY' | 'AUDIT';

/** Which API a policy came from, for decisions and logs. */
export type AuthzPolicyKind = 'AuthorizationPolicy' | 'XAuthorizationPolicy';

/** Attributes compared as strings (Istio's exact / prefix* / *suffix / * matching). */
export type StringAttribute =
  | 'source.principal'
  | 'source.namespace'
  | 'source.trustDomain'
  | 'connection.sni'
  | 'request.host'
  | 'request.method'
  | 'request.path'
  | 'request.header';

/** A Kubernetes service account of the mesh's trust domain; name '*' is every one of the namespace. */
export interface ServiceAccountRef {
  namespace: string;
  name: string;
}

export type Clause =
  | { attribute: Exclude<StringAttribute, 'request.header'>; values: readonly StringMatch[]; notValues: readonly StringMatch[] }
  /** `header`: the lower-case header name. */
  | { attribute: 'request.header'; header: string; values: readonly StringMatch[]; notValues: readonly StringMatch[] }
  | { attribute: 'source.ip' | 'destination.ip'; values: readonly IpBlock[]; notValues: readonly IpBlock[] }
  | { attribute: 'destination.port'; values: readonly number[]; notValues: readonly number[] }
  | { attribute: 'source.serviceAccount'; values: readonly ServiceAccountRef[]; notValues: readonly ServiceAccountRef[] };

export type AttributeName = Clause['attribute'];

/**
 * The attributes only an HTTP request has. A connection that the proxy does not parse as
 * HTTP (L4) cannot be tested on them; see `l7Needed` and evaluate.ts for what happens then.
 */
export const L7_ATTRIBUTES: ReadonlySet<AttributeName> = new Set<AttributeName>(['request.host', 'request.method', 'request.path', 'request.header']);

export interface CompiledRule {
  /** undefined: any source; an empty list: no source (the rule never matches). */
  readonly from: readonly (readonly Clause[])[] | undefined;
  /** undefined: any operation; an empty list: none. */
  readonly to: readonly (readonly Clause[])[] | undefined;
  /** Every condition must hold. */
  readonly when: readonly Clause[];
  /** Some clause of the rule tests an HTTP attribute (L7_ATTRIBUTES). */
  readonly l7Needed: boolean;
}

/**
 * Which workloads a policy applies to, within its own namespace:
 * - `all`: every workload of the namespace;
 * - `selector`: the pods whose labels the selector matches;
 * - `services`: the pods selected by one of these Services (names in the policy's namespace).
 * `rootNamespaceIsMesh`: in the mesh root namespace, `all` and `selector` reach every
 * namespace (Istio); GEP-3779 policies never leave their namespace.
 */
export type PolicyScope =
  | { kind: 'all'; rootNamespaceIsMesh: boolean }
  | { kind: 'selector'; selector: LabelSelector; rootNamespaceIsMesh: boolean }
  | { kind: 'services'; names: readonly string[] };

export interface CompiledPolicy {
  readonly kind: AuthzPolicyKind;
  readonly namespace: string;
  readonly name: string;
  readonly file: string;
  readonly createdMs: number | undefined;
  readonly action: AuthzAction;
  readonly scope: PolicyScope;
  /** An empty list never matches: an ALLOW policy without rules allows nothing. */
  readonly rules: readonly CompiledRule[];
}

export function isL7Clause(clause: Clause): boolean {
  return L7_ATTRIBUTES.has(clause.attribute);
}

/** A rule with its l7Needed computed from its clauses. */
export function compiledRule(from: CompiledRule['from'], to: CompiledRule['to'], when: readonly Clause[]): CompiledRule {
  const clauses = [...(from ?? []).flat(), ...(to ?? []).flat(), ...when];
  return { from, to, when, l7Needed: clauses.some(isL7Clause) };
}
