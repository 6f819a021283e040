import { inBlock, type IpBlock, type ParsedAddress } from './ip-block';
import { isL7Clause, type AuthzAction, type AuthzPolicyKind, type Clause, type CompiledPolicy, type CompiledRule, type ServiceAccountRef } from './model';
import type { AuthorizationPolicies } from './policy-set';
import type { AuthzDestination, AuthzRequest } from './request';
import { RequestFacts } from './request-facts';
import { stringMatches, type StringMatch } from './string-match';

/**
 * The authorization verdict for one request or connection, as Istio decides it:
 *
 * 1. CUSTOM policies: not supported (the parser rejects them; nodemesh has no external
 *    authorizer).
 * 2. AUDIT policies that match are recorded in `audited`; they never decide.
 * 3. A DENY policy with a matching rule denies.
 * 4. When ALLOW policies apply to the workload, a rule of one of them must match, else
 *    the request is denied; an ALLOW policy without rules therefore denies everything.
 * 5. With no ALLOW policy for the workload, the request is allowed.
 *
 * L7 at L4. A connection the proxy relays as bytes has no method, path, host or headers.
 * A clause on one of those (`l7Needed` on its rule) is then neither true nor false, and
 * the action decides which way it falls, as Istio does for TCP traffic (its reference:
 * "for a DENY rule, missing attributes are treated as matches"; ztunnel drops the HTTP
 * rules of ALLOW policies):
 * - ALLOW: the clause does not match, so the rule cannot allow: access the policy author
 *   meant to limit to some paths is not widened to the whole port;
 * - DENY: the clause matches, so the rule denies on what else it names (its ports,
 *   sources): the request is refused rather than let through a check that could not run
 *   (fail closed; scope such rules with `ports` to keep them off TCP ports);
 * - AUDIT: as DENY, so what might match is recorded (flagged `l7Unknown`).
 * `needsL7` tells the proxy where parsing HTTP would make these verdicts exact.
 */

export type Verdict = 'allow' | 'deny';

/** A rule that decided or was audited. */
export interface RuleRef {
  /** "namespace/name" */
  policy: string;
  kind: AuthzPolicyKind;
  ruleIndex: number;
  action: AuthzAction;
  /** The rule matched at L4 only because its HTTP clauses were taken as matching (DENY, AUDIT). */
  l7Unknown?: true;
}

export interface AuthzDecision {
  verdict: Verdict;
  /** The rule that allowed or denied; absent when the default decided. */
  decidedBy?: RuleRef;
  audited: RuleRef[];
  /** For logs and the 403 body: why, naming the policy. */
  reason: string;
}

export function evaluate(policies: AuthorizationPolicies, request: AuthzRequest): AuthzDecision {
  const applicable = policies.applicableTo(request.destination);
  if (applicable.length === 0) return { verdict: 'allow', audited: [], reason: 'no authorization policy applies to the workload' };
  const facts = new RequestFacts(request, policies.trustDomain);
  const audited: RuleRef[] = [];
  for (const p of applicable) {
    if (p.action !== 'AUDIT') continue;
    const ref = firstMatch(p, facts);
    if (ref) audited.push(ref);
  }
  for (const p of applicable) {
    if (p.action !== 'DENY') continue;
    const ref = firstMatch(p, facts);
    if (!ref) continue;
    const why = ref.l7Unknown ? '; its HTTP conditions cannot be checked on a connection that is not parsed as HTTP, and a DENY rule then fails closed' : '';
    return { verdict: 'deny', decidedBy: ref, audited, reason: `denied by ${describe(p)} (DENY), rule ${ref.ruleIndex}${why}` };
  }
  const allows: CompiledPolicy[] = [];
  for (const p of applicable) {
    if (p.action !== 'ALLOW') continue;
    allows.push(p);
    const ref = firstMatch(p, facts);
    if (ref) return { verdict: 'allow', decidedBy: ref, audited, reason: `allowed by ${describe(p)}, rule ${ref.ruleIndex}` };
  }
  if (allows.length === 0) return { verdict: 'allow', audited, reason: 'no ALLOW policy applies to the workload, and no DENY policy matched' };
  const l7 = !facts.isHttp && allows.some((p) => p.rules.some((r) => r.l7Needed)) ? '; rules with HTTP conditions cannot match a connection that is not parsed as HTTP' : '';
  return { verdict: 'deny', audited, reason: `no rule of the ALLOW policies that apply (${allows.map(describe).join(', ')}) matched${l7}` };
}

/**
 * Whether the proxy must parse HTTP on this port of this workload for the verdicts to be
 * exact: some policy that applies has a rule with an HTTP clause that is not confined to
 * other ports. Conservative: a rule whose other clauses would never match still counts.
 */
export function needsL7(policies: AuthorizationPolicies, workload: AuthzDestination, port: number): boolean {
  for (const p of policies.applicableTo(workload)) {
    for (const rule of p.rules) if (rule.l7Needed && mayApplyOnPort(rule, port)) return true;
  }
  return false;
}

function describe(p: CompiledPolicy): string {
  return `${p.kind} ${p.namespace}/${p.name}`;
}

function firstMatch(p: CompiledPolicy, facts: RequestFacts): RuleRef | undefined {
  const unknownMatches = p.action !== 'ALLOW';
  for (let i = 0; i < p.rules.length; i++) {
    const rule = p.rules[i]!;
    if (!ruleMatches(rule, facts, unknownMatches)) continue;
    const ref: RuleRef = { policy: `${p.namespace}/${p.name}`, kind: p.kind, ruleIndex: i, action: p.action };
    if (rule.l7Needed && !facts.isHttp) ref.l7Unknown = true;
    return ref;
  }
  return undefined;
}

function ruleMatches(rule: CompiledRule, facts: RequestFacts, unknownMatches: boolean): boolean {
  if (rule.from !== undefined && !anyAlternative(rule.from, facts, unknownMatches)) return false;
  if (rule.to !== undefined && !anyAlternative(rule.to, facts, unknownMatches)) return false;
  return allMatch(rule.when, facts, unknownMatches);
}

function anyAlternative(alternatives: readonly (readonly Clause[])[], facts: RequestFacts, unknownMatches: boolean): boolean {
  for (const clauses of alternatives) if (allMatch(clauses, facts, unknownMatches)) return true;
  return false;
}

function allMatch(clauses: readonly Clause[], facts: RequestFacts, unknownMatches: boolean): boolean {
  for (const c of clauses) if (!clauseMatches(c, facts, unknownMatches)) return false;
  return true;
}

/**
 * `values`: one must match (none listed: no constraint); `notValues`: none may. Loops
 * rather than closures: this runs for every clause of every rule a request meets.
 */
function clauseMatches(c: Clause, facts: RequestFacts, unknownMatches: boolean): boolean {
  if (!facts.isHttp && isL7Clause(c)) return unknownMatches;
  switch (c.attribute) {
    case 'source.ip':
    case 'destination.ip': {
      const address = c.attribute === 'source.ip' ? facts.source : facts.destination;
      return (c.values.length === 0 || anyBlock(c.values, address)) && !anyBlock(c.notValues, address);
    }
    case 'destination.port': {
      const port = facts.request.port;
      return (c.values.length === 0 || c.values.includes(port)) && !c.notValues.includes(port);
    }
    case 'source.serviceAccount':
      return (c.values.length === 0 || anyAccount(c.values, facts)) && !anyAccount(c.notValues, facts);
    case 'request.host': {
      const h = facts.host;
      return (c.values.length === 0 || anyHost(c.values, h)) && !anyHost(c.notValues, h);
    }
    default: {
      const value = stringAttribute(c, facts);
      return (c.values.length === 0 || anyString(c.values, value)) && !anyString(c.notValues, value);
    }
  }
}

function anyString(matches: readonly StringMatch[], value: string | undefined): boolean {
  for (const m of matches) if (stringMatches(m, value)) return true;
  return false;
}

/**
 * The port of the authority is ignored ("example.com" matches "example.com:8080"); a
 * pattern that names a port itself ("example.com:*") is compared with the whole authority.
 */
function anyHost(matches: readonly StringMatch[], h: { host: string; authority: string } | undefined): boolean {
  if (h === undefined) return false;
  for (const m of matches) if (stringMatches(m, h.host) || (patternHasPort(m) && stringMatches(m, h.authority))) return true;
  return false;
}

function anyBlock(blocks: readonly IpBlock[], address: ParsedAddress | undefined): boolean {
  for (const b of blocks) if (inBlock(b, address)) return true;
  return false;
}

function anyAccount(refs: readonly ServiceAccountRef[], facts: RequestFacts): boolean {
  for (const ref of refs) if (serviceAccountMatches(ref, facts)) return true;
  return false;
}

function stringAttribute(c: Clause, facts: RequestFacts): string | undefined {
  const r = facts.request;
  switch (c.attribute) {
    case 'source.principal':
      return facts.peer?.id;
    case 'source.namespace':
      return facts.peer?.namespace;
    case 'source.trustDomain':
      return facts.peer?.trustDomain;
    case 'connection.sni':
      return r.sni?.toLowerCase();
    case 'request.method':
      return r.http?.method;
    case 'request.path':
      return facts.path;
    case 'request.header':
      return facts.header(c.header);
    default:
      return undefined;
  }
}

function patternHasPort(m: StringMatch): boolean {
  return m.kind !== 'presence' && m.value.includes(':');
}

/** A service account of the mesh's own trust domain (GEP-3779: "within the same trust domain"). */
function serviceAccountMatches(ref: ServiceAccountRef, facts: RequestFacts): boolean {
  const peer = facts.peer;
  if (!peer || peer.trustDomain !== facts.trustDomain || peer.namespace !== ref.namespace) return false;
  return ref.name === '*' || peer.serviceAccount === ref.name;
}

function mayApplyOnPort(rule: CompiledRule, port: number): boolean {
  if (rule.from !== undefined && rule.from.length === 0) return false;
  if (rule.when.some((c) => excludesPort(c, port))) return false;
  return rule.to === undefined || rule.to.some((all) => !all.some((c) => excludesPort(c, port)));
}

function excludesPort(c: Clause, port: number): boolean {
  if (c.attribute !== 'destination.port') return false;
  return (c.values.length > 0 && !c.values.includes(port)) || c.notValues.includes(port);
}
