import type { OtherObject } from '../../config/objects';
import { objectLabel, rejection, type RejectedObject } from '../../config/validation';
import { parseDuration } from '../../config/duration';

/**
 * The nodemesh.dev/v1alpha1 TrafficPolicy CRD: resilience settings attached to one
 * Service by targetRef (load balancing, outlier detection, connection pool, fault
 * injection, local rate limiting). This module only reads and checks the objects; the
 * behaviour lives in the other files of src/policy, and policy-set.ts ties them together.
 *
 * A bad object is rejected as a whole (none of its settings apply), with one
 * RejectedObject per bad field, each naming the field path and what to write instead.
 * Unknown fields are rejected too, so that a typo does not silently fall back to a default.
 */

export const TRAFFIC_POLICY_KIND = 'TrafficPolicy';
export const POLICY_GROUP = 'nodemesh.dev';
export const TRAFFIC_POLICY_API_VERSION = `${POLICY_GROUP}/v1alpha1`;

export type LoadBalancerType = 'RoundRobin' | 'LeastRequest' | 'EWMA' | 'Random' | 'ConsistentHash';
export const LOAD_BALANCER_TYPES: readonly LoadBalancerType[] = ['RoundRobin', 'LeastRequest', 'EWMA', 'Random', 'ConsistentHash'];

export interface LoadBalancerConfig {
  type: LoadBalancerType;
  /** Set exactly when type is ConsistentHash. `header` is lower-case. */
  consistentHash?: { header: string };
}

export interface OutlierDetectionConfig {
  /** Consecutive 5xx responses (connect failures count too) before ejection; 0 disables. */
  consecutive5xxErrors: number;
  /** Consecutive 502/503/504 responses and connect failures/resets before ejection; 0 disables. */
  consecutiveGatewayErrors: number;
  /** After each interval an endpoint stays healthy, its ejection multiplier drops by one. */
  intervalMs: number;
  baseEjectionTimeMs: number;
  maxEjectionTimeMs: number;
  /** 0-100: never more than this share of the endpoints is ejected, and never all of them. */
  maxEjectionPercent: number;
}

export interface ConnectionPoolConfig {
  maxConnections: number;
  maxPendingRequests: number;
  maxRequests: number;
}

export interface FaultInjectionConfig {
  delay?: { percentage: number; fixedDelayMs: number };
  /** Exactly one of httpStatus and grpcStatus is set. */
  abort?: { percentage: number; httpStatus?: number; grpcStatus?: number };
}

export interface TokenBucketConfig {
  maxTokens: number;
  tokensPerFill: number;
  fillIntervalMs: number;
}

export interface RateLimitConfig {
  tokenBucket: TokenBucketConfig;
  perSourceWorkload: boolean;
}

export interface TrafficPolicy {
  /** namespace/name of the TrafficPolicy object. */
  key: string;
  namespace: string;
  name: string;
  /** The file it came from (the embedded source), for messages. */
  file: string;
  /** metadata.creationTimestamp as ISO 8601, when the object has one. */
  creationTimestamp?: string;
  /** namespace/name of the Service it attaches to (always its own namespace). */
  targetService: string;
  loadBalancer: LoadBalancerConfig;
  outlierDetection?: OutlierDetectionConfig;
  connectionPool?: ConnectionPoolConfig;
  faultInjection?: FaultInjectionConfig;
  rateLimit?: RateLimitConfig;
}

export const DEFAULT_LOAD_BALANCER: LoadBalancerConfig = Object.freeze({ type: 'RoundRobin' as const });

export const OUTLIER_DEFAULTS: Readonly<OutlierDetectionConfig> = Object.freeze({
  consecutive5xxErrors: 5,
  consecutiveGatewayErrors: 0,
  intervalMs: 10_000,
  baseEjectionTimeMs: 30_000,
  maxEjectionTimeMs: 300_000,
  maxEjectionPercent: 10,
});

export const CONNECTION_POOL_DEFAULTS: Readonly<ConnectionPoolConfig> = Object.freeze({
  maxConnections: 1024,
  maxPendingRequests: 1024,
  maxRequests: 1024,
});

export interface ParsedTrafficPolicies {
  /** target Service key (namespace/name) -> the policy that applies to it. */
  policies: Map<string, TrafficPolicy>;
  rejected: RejectedObject[];
}

const INT32_MAX = 2_147_483_647;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const HEADER_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

interface FieldProblem {
  path: string;
  problem: string;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (value instanceof Date) return `a timestamp (${value.toISOString()})`;
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `"${value}"`;
  return `${typeof value} ${String(value)}`;
}

/** Collects every problem of one object instead of stopping at the first. */
class Checker {
  readonly problems: FieldProblem[] = [];

  fail(path: string, problem: string): undefined {
    this.problems.push({ path, problem });
    return undefined;
  }

  /** A mapping or undefined; unknown keys are reported with the list of known ones. */
  mapping(value: unknown, path: string, known: readonly string[]): Record<string, unknown> | undefined {
    if (value === undefined || value === null) return undefined;
    if (!isRecord(value)) return this.fail(path, `must be a mapping, got ${describe(value)}`);
    for (const key of Object.keys(value)) {
      if (!known.includes(key)) this.fail(`${path}.${key}`, `unknown field (known fields of ${path}: ${known.join(', ')}); check the spelling`);
    }
    return value;
  }

  string(value: unknown, path: string): string | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== 'string') return this.fail(path, `must be a string, got ${describe(value)}`);
    return value;
  }

  integer(value: unknown, path: string, min: number, max: number, fallback: number): number | undefined {
    if (value === undefined || value === null) return fallback;
    const range = max === INT32_MAX ? `an integer >= ${min}` : `an integer from ${min} to ${max}`;
    if (typeof value === 'string' && /^-?[0-9]+$/.test(value.trim())) return this.fail(path, `must be ${range}, got the string ${describe(value)}; write it without quotes`);
    if (typeof value !== 'number' || !Number.isInteger(value)) return this.fail(path, `must be ${range}, got ${describe(value)}`);
    if (value < min || value > max) return this.fail(path, `must be ${range}, got ${value}`);
    return value;
  }

  percentage(value: unknown, path: string): number | undefined {
    if (value === undefined || value === null) return this.fail(path, 'required (a number from 0 to 100: the share of requests affected)');
    if (typeof value !== 'number' || !Number.isFinite(value)) return this.fail(path, `must be a number from 0 to 100, got ${describe(value)}`);
    if (value < 0 || value > 100) return this.fail(path, `must be a number from 0 to 100, got ${value}`);
    return value;
  }

  /** A GEP-2257 duration in ms; `fallback` undefined makes it required. */
  duration(value: unknown, path: string, fallback: number | undefined, minMs = 0): number | undefined {
    if (value === undefined || value === null) {
      if (fallback === undefined) return this.fail(path, 'required (a duration such as "100ms", "10s" or "1m30s")');
      return fallback;
    }
    if (typeof value !== 'string') {
      const hint = typeof value === 'number' ? `; write a duration with its unit, e.g. "${value}s" or "${value}ms"` : '';
      return this.fail(path, `must be a duration string such as "100ms", "10s" or "1m30s", got ${describe(value)}${hint}`);
    }
    const ms = parseDuration(value);
    if (ms === undefined) {
      return this.fail(path, `"${value}" is not a duration: use 1-4 components of up to 5 digits with unit h, m, s or ms, e.g. "100ms", "10s", "1h2m3s4ms"`);
    }
    if (ms < minMs) return this.fail(path, minMs === 1 ? `must be longer than 0, got "${value}"` : `must be at least ${minMs}ms, got "${value}"`);
    return ms;
  }

  boolean(value: unknown, path: string, fallback: boolean): boolean | undefined {
    if (value === undefined || value === null) return fallback;
    if (typeof value !== 'boolean') return this.fail(path, `must be true or false, got ${describe(value)}`);
    return value;
  }
}

function parseTargetRef(c: Checker, raw: unknown, namespace: string): string | undefined {
  const path = 'spec.targetRef';
  if (raw === undefined || raw === null) return c.fail(path, 'required: the Service this policy attaches to, e.g. { group: "", kind: Service, name: my-service }');
  const ref = c.mapping(raw, path, ['group', 'kind', 'name', 'namespace']);
  if (!ref) return undefined;
  const group = c.string(ref.group, `${path}.group`) ?? '';
  if (group !== '' && group !== 'core') c.fail(`${path}.group`, `"${group}" is not supported: a TrafficPolicy attaches to a core Service (group "")`);
  const kind = c.string(ref.kind, `${path}.kind`);
  if (kind === undefined) c.fail(`${path}.kind`, 'required (Service)');
  else if (kind !== 'Service') c.fail(`${path}.kind`, `"${kind}" is not supported: a TrafficPolicy attaches to a Service`);
  const targetNamespace = c.string(ref.namespace, `${path}.namespace`);
  if (targetNamespace !== undefined && targetNamespace !== namespace) {
    c.fail(`${path}.namespace`, `a TrafficPolicy attaches only to a Service of its own namespace (${namespace}); create the policy in namespace ${targetNamespace} instead`);
  }
  const name = c.string(ref.name, `${path}.name`);
  if (name === undefined || name === '') return c.fail(`${path}.name`, 'required (the name of a Service in the same namespace)');
  if (name.length > 63 || !DNS1035_LABEL.test(name)) return c.fail(`${path}.name`, `"${name}" is not a valid Service name (lower-case letters, digits and '-', starting with a letter, at most 63 characters)`);
  return `${namespace}/${name}`;
}

function parseLoadBalancer(c: Checker, raw: unknown): LoadBalancerConfig | undefined {
  const path = 'spec.loadBalancer';
  const lb = c.mapping(raw, path, ['type', 'consistentHash']);
  if (!lb) return raw === undefined || raw === null ? { type: 'RoundRobin' } : undefined;
  const typeText = c.string(lb.type, `${path}.type`) ?? 'RoundRobin';
  if (!(LOAD_BALANCER_TYPES as readonly string[]).includes(typeText)) {
    return c.fail(`${path}.type`, `"${typeText}" is not a load balancer type (use one of ${LOAD_BALANCER_TYPES.join(', ')})`);
  }
  const type = typeText as LoadBalancerType;
  const hashPath = `${path}.consistentHash`;
  if (type !== 'ConsistentHash') {
    if (lb.consistentHash !== undefined && lb.consistentHash !== null) return c.fail(hashPath, `applies only with type ConsistentHash (type is ${type}); remove it or set type: ConsistentHash`);
    return { type };
  }
  if (lb.consistentHash === undefined || lb.consistentHash === null) return c.fail(hashPath, 'required with type ConsistentHash: the request header to hash, e.g. { header: x-user }');
  const hash = c.mapping(lb.consistentHash, hashPath, ['header']);
  if (!hash) return undefined;
  const header = c.string(hash.header, `${hashPath}.header`);
  if (header === undefined || header === '') return c.fail(`${hashPath}.header`, 'required (the name of the request header to hash, e.g. x-user)');
  if (!HEADER_TOKEN.test(header)) return c.fail(`${hashPath}.header`, `"${header}" is not a valid HTTP header name`);
  return { type, consistentHash: { header: header.toLowerCase() } };
}

function parseOutlierDetection(c: Checker, raw: unknown): OutlierDetectionConfig | undefined {
  const path = 'spec.outlierDetection';
  const od = c.mapping(raw, path, ['consecutive5xxErrors', 'consecutiveGatewayErrors', 'interval', 'baseEjectionTime', 'maxEjectionTime', 'maxEjectionPercent']);
  if (!od) return undefined;
  const d = OUTLIER_DEFAULTS;
  const consecutive5xxErrors = c.integer(od.consecutive5xxErrors, `${path}.consecutive5xxErrors`, 0, INT32_MAX, d.consecutive5xxErrors);
  const consecutiveGatewayErrors = c.integer(od.consecutiveGatewayErrors, `${path}.consecutiveGatewayErrors`, 0, INT32_MAX, d.consecutiveGatewayErrors);
  const intervalMs = c.duration(od.interval, `${path}.interval`, d.intervalMs, 1);
  const baseEjectionTimeMs = c.duration(od.baseEjectionTime, `${path}.baseEjectionTime`, d.baseEjectionTimeMs, 1);
  const explicitMax = od.maxEjectionTime !== undefined && od.maxEjectionTime !== null;
  let maxEjectionTimeMs = c.duration(od.maxEjectionTime, `${path}.maxEjectionTime`, d.maxEjectionTimeMs, 1);
  const maxEjectionPercent = c.integer(od.maxEjectionPercent, `${path}.maxEjectionPercent`, 0, 100, d.maxEjectionPercent);
  if (baseEjectionTimeMs !== undefined && maxEjectionTimeMs !== undefined && maxEjectionTimeMs < baseEjectionTimeMs) {
    if (explicitMax) {
      return c.fail(`${path}.maxEjectionTime`, `must be at least baseEjectionTime (${String(od.baseEjectionTime)}), got "${String(od.maxEjectionTime)}"`);
    }
    // Only the base was given and it exceeds the default cap: the cap follows the base.
    maxEjectionTimeMs = baseEjectionTimeMs;
  }
  if (
    consecutive5xxErrors === undefined ||
    consecutiveGatewayErrors === undefined ||
    intervalMs === undefined ||
    baseEjectionTimeMs === undefined ||
    maxEjectionTimeMs === undefined ||
    maxEjectionPercent === undefined
  ) {
    return undefined;
  }
  return { consecutive5xxErrors, consecutiveGatewayErrors, intervalMs, baseEjectionTimeMs, maxEjectionTimeMs, maxEjectionPercent };
}

function parseConnectionPool(c: Checker, raw: unknown): ConnectionPoolConfig | undefined {
  const path = 'spec.connectionPool';
  const cp = c.mapping(raw, path, ['maxConnections', 'maxPendingRequests', 'maxRequests']);
  if (!cp) return undefined;
  const d = CONNECTION_POOL_DEFAULTS;
  const maxConnections = c.integer(cp.maxConnections, `${path}.maxConnections`, 1, INT32_MAX, d.maxConnections);
  const maxPendingRequests = c.integer(cp.maxPendingRequests, `${path}.maxPendingRequests`, 0, INT32_MAX, d.maxPendingRequests);
  const maxRequests = c.integer(cp.maxRequests, `${path}.maxRequests`, 1, INT32_MAX, d.maxRequests);
  if (maxConnections === undefined || maxPendingRequests === undefined || maxRequests === undefined) return undefined;
  return { maxConnections, maxPendingRequests, maxRequests };
}

function parseFaultInjection(c: Checker, raw: unknown): FaultInjectionConfig | undefined {
  const path = 'spec.faultInjection';
  const fi = c.mapping(raw, path, ['delay', 'abort']);
  if (!fi) return undefined;
  const out: FaultInjectionConfig = {};
  let ok = true;
  const delay = c.mapping(fi.delay, `${path}.delay`, ['percentage', 'fixedDelay']);
  if (delay) {
    const percentage = c.percentage(delay.percentage, `${path}.delay.percentage`);
    const fixedDelayMs = c.duration(delay.fixedDelay, `${path}.delay.fixedDelay`, undefined, 1);
    if (percentage === undefined || fixedDelayMs === undefined) ok = false;
    else out.delay = { percentage, fixedDelayMs };
  } else if (fi.delay !== undefined && fi.delay !== null) ok = false;
  const abort = c.mapping(fi.abort, `${path}.abort`, ['percentage', 'httpStatus', 'grpcStatus']);
  if (abort) {
    const percentage = c.percentage(abort.percentage, `${path}.abort.percentage`);
    const hasHttp = abort.httpStatus !== undefined && abort.httpStatus !== null;
    const hasGrpc = abort.grpcStatus !== undefined && abort.grpcStatus !== null;
    if (hasHttp === hasGrpc) {
      c.fail(`${path}.abort`, hasHttp ? 'set only one of httpStatus and grpcStatus' : 'set one of httpStatus (e.g. 503) or grpcStatus (e.g. 14, UNAVAILABLE)');
      ok = false;
    } else if (hasHttp) {
      const httpStatus = c.integer(abort.httpStatus, `${path}.abort.httpStatus`, 200, 599, 0);
      if (percentage === undefined || httpStatus === undefined) ok = false;
      else out.abort = { percentage, httpStatus };
    } else {
      const grpcStatus = c.integer(abort.grpcStatus, `${path}.abort.grpcStatus`, 1, 16, 0);
      if (percentage === undefined || grpcStatus === undefined) ok = false;
      else out.abort = { percentage, grpcStatus };
    }
  } else if (fi.abort !== undefined && fi.abort !== null) ok = false;
  return ok ? out : undefined;
}

function parseRateLimit(c: Checker, raw: unknown): RateLimitConfig | undefined {
  const path = 'spec.rateLimit';
  const rl = c.mapping(raw, path, ['tokenBucket', 'perSourceWorkload']);
  if (!rl) return undefined;
  const perSourceWorkload = c.boolean(rl.perSourceWorkload, `${path}.perSourceWorkload`, false);
  const bucketPath = `${path}.tokenBucket`;
  if (rl.tokenBucket === undefined || rl.tokenBucket === null) {
    return c.fail(bucketPath, 'required, e.g. { maxTokens: 100, tokensPerFill: 10, fillInterval: 1s }');
  }
  const tb = c.mapping(rl.tokenBucket, bucketPath, ['maxTokens', 'tokensPerFill', 'fillInterval']);
  if (!tb) return undefined;
  const need = (value: unknown, field: string): number | undefined =>
    value === undefined || value === null ? c.fail(`${bucketPath}.${field}`, 'required (an integer >= 1)') : c.integer(value, `${bucketPath}.${field}`, 1, INT32_MAX, 0);
  const maxTokens = need(tb.maxTokens, 'maxTokens');
  const tokensPerFill = need(tb.tokensPerFill, 'tokensPerFill');
  const fillIntervalMs = c.duration(tb.fillInterval, `${bucketPath}.fillInterval`, undefined, 1);
  if (maxTokens === undefined || tokensPerFill === undefined || fillIntervalMs === undefined || perSourceWorkload === undefined) return undefined;
  return { tokenBucket: { maxTokens, tokensPerFill, fillIntervalMs }, perSourceWorkload };
}

function creationTime(c: Checker, value: unknown): { iso?: string; ms?: number } {
  if (value === undefined || value === null) return {};
  const ms = value instanceof Date ? value.getTime() : typeof value === 'string' ? Date.parse(value) : NaN;
  if (!Number.isFinite(ms)) {
    c.fail('metadata.creationTimestamp', `must be an RFC 3339 time such as "2024-05-01T10:00:00Z", got ${describe(value)}`);
    return {};
  }
  return { iso: new Date(ms).toISOString(), ms };
}

interface Candidate {
  policy: TrafficPolicy;
  createdMs: number | undefined;
  label: string;
}

/** Converts one object, or returns its problems. */
function parseOne(other: OtherObject): { policy: TrafficPolicy; createdMs: number | undefined } | FieldProblem[] {
  const c = new Checker();
  const namespace = other.namespace ?? 'default';
  const object = other.object;
  if (other.apiVersion !== TRAFFIC_POLICY_API_VERSION) {
    return [{ path: 'apiVersion', problem: `"${other.apiVersion}" is not served; use ${TRAFFIC_POLICY_API_VERSION}` }];
  }
  const meta = isRecord(object.metadata) ? object.metadata : {};
  const created = creationTime(c, meta.creationTimestamp);
  const known = ['targetRef', 'loadBalancer', 'outlierDetection', 'connectionPool', 'faultInjection', 'rateLimit'];
  if (object.spec === undefined || object.spec === null) return [{ path: 'spec', problem: 'required (at least spec.targetRef)' }];
  const spec = c.mapping(object.spec, 'spec', known);
  if (!spec) return c.problems;
  const targetService = parseTargetRef(c, spec.targetRef, namespace);
  const loadBalancer = parseLoadBalancer(c, spec.loadBalancer);
  const outlierDetection = parseOutlierDetection(c, spec.outlierDetection);
  const connectionPool = parseConnectionPool(c, spec.connectionPool);
  const faultInjection = parseFaultInjection(c, spec.faultInjection);
  const rateLimit = parseRateLimit(c, spec.rateLimit);
  if (c.problems.length > 0 || targetService === undefined || loadBalancer === undefined) return c.problems;
  const policy: TrafficPolicy = {
    key: `${namespace}/${other.name}`,
    namespace,
    name: other.name,
    file: other.file,
    targetService,
    loadBalancer,
  };
  if (created.iso !== undefined) policy.creationTimestamp = created.iso;
  if (outlierDetection) policy.outlierDetection = outlierDetection;
  if (connectionPool) policy.connectionPool = connectionPool;
  if (faultInjection) policy.faultInjection = faultInjection;
  if (rateLimit) policy.rateLimit = rateLimit;
  return { policy, createdMs: created.ms };
}

/** True when `a` is older than `b`: a creation time beats none, earlier beats later, then the name. */
function olderThan(a: Candidate, b: Candidate): boolean {
  if (a.createdMs !== undefined && b.createdMs === undefined) return true;
  if (a.createdMs === undefined && b.createdMs !== undefined) return false;
  if (a.createdMs !== undefined && b.createdMs !== undefined && a.createdMs !== b.createdMs) return a.createdMs < b.createdMs;
  return a.policy.name < b.policy.name;
}

export function isTrafficPolicy(other: OtherObject): boolean {
  return other.kind === TRAFFIC_POLICY_KIND && other.apiVersion.split('/')[0] === POLICY_GROUP;
}

/**
 * Reads every nodemesh.dev TrafficPolicy among `others` (objects of other kinds and other
 * API groups are ignored). When several valid policies target one Service, the oldest
 * (creationTimestamp; an object with one is older than an object without; then name)
 * applies and the others are rejected with a reason naming it.
 */
export function parseTrafficPolicies(others: readonly OtherObject[]): ParsedTrafficPolicies {
  const rejected: RejectedObject[] = [];
  const byTarget = new Map<string, Candidate[]>();
  for (const other of others) {
    if (!isTrafficPolicy(other)) continue;
    const label = objectLabel(TRAFFIC_POLICY_KIND, other.namespace ?? 'default', other.name);
    const result = parseOne(other);
    if (Array.isArray(result)) {
      for (const { path, problem } of result) rejected.push(rejection(other.file, label, problem, path));
      continue;
    }
    const list = byTarget.get(result.policy.targetService) ?? [];
    list.push({ policy: result.policy, createdMs: result.createdMs, label });
    byTarget.set(result.policy.targetService, list);
  }
  const policies = new Map<string, TrafficPolicy>();
  for (const [target, candidates] of byTarget) {
    let winner = candidates[0]!;
    for (const candidate of candidates) if (olderThan(candidate, winner)) winner = candidate;
    policies.set(target, winner.policy);
    for (const loser of candidates) {
      if (loser === winner) continue;
      const why =
        winner.createdMs !== undefined && loser.createdMs !== undefined && winner.createdMs !== loser.createdMs
          ? `it was created earlier (${winner.policy.creationTimestamp})`
          : winner.createdMs !== undefined && loser.createdMs === undefined
            ? 'it has a creationTimestamp and this one has none'
            : 'neither is older and its name sorts first';
      rejected.push(
        rejection(
          loser.policy.file,
          loser.label,
          `conflict: Service ${target} already has ${winner.label} (${winner.policy.file}), which applies because ${why}; only one TrafficPolicy applies per Service: merge the settings into ${winner.label} or delete one of them`,
          'spec.targetRef',
        ),
      );
    }
  }
  return { policies, rejected };
}
