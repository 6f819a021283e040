import type { OtherObject } from '../../config/objects';
import { isRecord, objectLabel, rejection, rejectionsOf, type FieldProblem, type RejectedObject } from '../../config/validation';
import { creationTime, olderThan, whyOlder, type ObjectAge } from '../../config/object-age';
import { INT32_MAX, PolicyFields } from '../../config/policy-fields';
import {
  CONNECTION_POOL_DEFAULTS,
  isTrafficPolicy,
  LOAD_BALANCER_TYPES,
  OUTLIER_DEFAULTS,
  TRAFFIC_POLICY_API_VERSION,
  TRAFFIC_POLICY_KIND,
  type ConnectionPoolConfig,
  type FaultInjectionConfig,
  type LoadBalancerConfig,
  type LoadBalancerType,
  type OutlierDetectionConfig,
  type RateLimitConfig,
  type TrafficPolicy,
} from './traffic-policy';

/**
 * Reads and checks TrafficPolicy objects. A bad object is rejected as a whole (none of
 * its settings apply), with one RejectedObject per bad field (the kit's Problems collects
 * them all), each naming the field path and what to write instead. Unknown fields are
 * rejected too, so that a typo does not silently fall back to a default.
 */

export interface ParsedTrafficPolicies {
  /** target Service key (namespace/name) -> the policy that applies to it. */
  policies: Map<string, TrafficPolicy>;
  rejected: RejectedObject[];
}

const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const HEADER_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function parseTargetRef(c: PolicyFields, raw: unknown, namespace: string): string | undefined {
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

function parseLoadBalancer(c: PolicyFields, raw: unknown): LoadBalancerConfig | undefined {
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

function parseOutlierDetection(c: PolicyFields, raw: unknown): OutlierDetectionConfig | undefined {
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

function parseConnectionPool(c: PolicyFields, raw: unknown): ConnectionPoolConfig | undefined {
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

function parseFaultInjection(c: PolicyFields, raw: unknown): FaultInjectionConfig | undefined {
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

function parseRateLimit(c: PolicyFields, raw: unknown): RateLimitConfig | undefined {
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

const ageOf = (c: Candidate): ObjectAge => ({ createdMs: c.createdMs, name: c.policy.name });

interface Candidate {
  policy: TrafficPolicy;
  createdMs: number | undefined;
  label: string;
}

/** Converts one object, or returns its problems. */
function parseOne(other: OtherObject): { policy: TrafficPolicy; createdMs: number | undefined } | FieldProblem[] {
  const c = new PolicyFields();
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
  if (!spec) return c.list;
  const targetService = parseTargetRef(c, spec.targetRef, namespace);
  const loadBalancer = parseLoadBalancer(c, spec.loadBalancer);
  const outlierDetection = parseOutlierDetection(c, spec.outlierDetection);
  const connectionPool = parseConnectionPool(c, spec.connectionPool);
  const faultInjection = parseFaultInjection(c, spec.faultInjection);
  const rateLimit = parseRateLimit(c, spec.rateLimit);
  if (!c.ok || targetService === undefined || loadBalancer === undefined) return c.list;
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
      rejected.push(...rejectionsOf(other.file, label, result));
      continue;
    }
    const list = byTarget.get(result.policy.targetService) ?? [];
    list.push({ policy: result.policy, createdMs: result.createdMs, label });
    byTarget.set(result.policy.targetService, list);
  }
  const policies = new Map<string, TrafficPolicy>();
  for (const [target, candidates] of byTarget) {
    let winner = candidates[0]!;
    for (const candidate of candidates) if (olderThan(ageOf(candidate), ageOf(winner))) winner = candidate;
    policies.set(target, winner.policy);
    for (const loser of candidates) {
      if (loser === winner) continue;
      const why = whyOlder({ ...ageOf(winner), ...(winner.policy.creationTimestamp ? { iso: winner.policy.creationTimestamp } : {}) }, ageOf(loser));
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
