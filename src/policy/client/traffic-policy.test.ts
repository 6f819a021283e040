import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseK8sYaml } from '../../config/k8s-yaml';
import { convertObjects } from '../../config/objects';
import type { RejectedObject } from '../../config/validation';
import { formatGatewayDuration as formatDuration, parseDuration } from '../../config/duration';
import { parseTrafficPolicies, type ParsedTrafficPolicies } from './parse-traffic-policy';

function parse(text: string, file = 'policy.yaml'): ParsedTrafficPolicies {
  const parsed = parseK8sYaml(text, file);
  assert.deepEqual(parsed.problems, []);
  const converted = convertObjects(parsed.objects);
  assert.deepEqual(converted.rejected, []);
  return parseTrafficPolicies(converted.others);
}

const FULL = `
apiVersion: nodemesh.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: b-policy, namespace: demo, creationTimestamp: "2024-05-01T10:00:00Z" }
spec:
  targetRef: { group: "", kind: Service, name: b }
  loadBalancer:
    type: ConsistentHash
    consistentHash: { header: X-User }
  outlierDetection:
    consecutive5xxErrors: 5
    consecutiveGatewayErrors: 3
    interval: 10s
    baseEjectionTime: 30s
    maxEjectionTime: 5m
    maxEjectionPercent: 10
  connectionPool:
    maxConnections: 100
    maxPendingRequests: 50
    maxRequests: 200
  faultInjection:
    delay: { percentage: 10, fixedDelay: 100ms }
    abort: { percentage: 5, httpStatus: 503 }
  rateLimit:
    tokenBucket: { maxTokens: 100, tokensPerFill: 10, fillInterval: 1s }
    perSourceWorkload: true
`;

/** A policy for Service b with `spec` lines appended after targetRef. */
function withSpec(extra: string, name = 'p'): string {
  return `
apiVersion: nodemesh.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: ${name}, namespace: demo }
spec:
  targetRef: { group: "", kind: Service, name: b }
${extra}`;
}

function rejectedOnly(text: string): RejectedObject[] {
  const out = parse(text);
  assert.equal(out.policies.size, 0, 'a bad object applies none of its settings');
  assert.ok(out.rejected.length > 0);
  for (const r of out.rejected) {
    assert.equal(r.code, 'ERR_NM_CONFIG_INVALID');
    assert.equal(r.file, 'policy.yaml');
    assert.match(r.object, /^TrafficPolicy demo\//);
    assert.ok(r.reason.includes('policy.yaml') && r.reason.includes(r.object), r.reason);
    if (r.path) assert.ok(r.reason.includes(r.path), r.reason);
  }
  return out.rejected;
}

/** Exactly one rejection, at `path`, whose reason matches `pattern`. */
function expectOne(text: string, path: string, pattern: RegExp): void {
  const rejected = rejectedOnly(text);
  assert.equal(rejected.length, 1, JSON.stringify(rejected, null, 1));
  assert.equal(rejected[0]!.path, path);
  assert.match(rejected[0]!.reason, pattern);
}

test('durations follow GEP-2257', () => {
  assert.equal(parseDuration('100ms'), 100);
  assert.equal(parseDuration('10s'), 10_000);
  assert.equal(parseDuration('1m'), 60_000);
  assert.equal(parseDuration('1h2m3s4ms'), 3_723_004);
  assert.equal(parseDuration('0s'), 0);
  assert.equal(parseDuration('1m1m'), 120_000, 'components add up like Go time.ParseDuration');
  for (const bad of ['', '10', '1.5s', '-1s', '1d', '100us', '123456s', '1h1m1s1ms1h', ' 1s', '1S']) {
    assert.equal(parseDuration(bad), undefined, bad);
  }
  assert.equal(formatDuration(3_723_004), '1h2m3s4ms');
  assert.equal(formatDuration(0), '0s');
  assert.equal(parseDuration(formatDuration(90_500)), 90_500);
});

test('a full TrafficPolicy parses with every field in milliseconds', () => {
  const out = parse(FULL);
  assert.deepEqual(out.rejected, []);
  assert.deepEqual([...out.policies.keys()], ['demo/b']);
  assert.deepEqual(out.policies.get('demo/b'), {
    key: 'demo/b-policy',
    namespace: 'demo',
    name: 'b-policy',
    file: 'policy.yaml',
    creationTimestamp: '2024-05-01T10:00:00.000Z',
    targetService: 'demo/b',
    loadBalancer: { type: 'ConsistentHash', consistentHash: { header: 'x-user' } },
    outlierDetection: {
      consecutive5xxErrors: 5,
      consecutiveGatewayErrors: 3,
      intervalMs: 10_000,
      baseEjectionTimeMs: 30_000,
      maxEjectionTimeMs: 300_000,
      maxEjectionPercent: 10,
    },
    connectionPool: { maxConnections: 100, maxPendingRequests: 50, maxRequests: 200 },
    faultInjection: { delay: { percentage: 10, fixedDelayMs: 100 }, abort: { percentage: 5, httpStatus: 503 } },
    rateLimit: { tokenBucket: { maxTokens: 100, tokensPerFill: 10, fillIntervalMs: 1000 }, perSourceWorkload: true },
  });
});

test('defaults: RoundRobin, and the documented values for sections given empty', () => {
  const out = parse(withSpec('  outlierDetection: {}\n  connectionPool: {}\n  faultInjection: { abort: { percentage: 1, grpcStatus: 14 } }'));
  assert.deepEqual(out.rejected, []);
  const p = out.policies.get('demo/b')!;
  assert.deepEqual(p.loadBalancer, { type: 'RoundRobin' });
  assert.deepEqual(p.outlierDetection, {
    consecutive5xxErrors: 5,
    consecutiveGatewayErrors: 0,
    intervalMs: 10_000,
    baseEjectionTimeMs: 30_000,
    maxEjectionTimeMs: 300_000,
    maxEjectionPercent: 10,
  });
  assert.deepEqual(p.connectionPool, { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024 });
  assert.deepEqual(p.faultInjection, { abort: { percentage: 1, grpcStatus: 14 } });
  assert.equal(p.rateLimit, undefined);
  // A base ejection time above the default cap raises the cap with it.
  const long = parse(withSpec('  outlierDetection: { baseEjectionTime: 10m }')).policies.get('demo/b')!;
  assert.equal(long.outlierDetection!.maxEjectionTimeMs, 600_000);
});

test('objects of other kinds and API groups are ignored; another nodemesh version is rejected', () => {
  const out = parse(`
apiVersion: gateway.kgateway.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: theirs, namespace: demo }
spec: { anything: 1 }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r, namespace: demo }
spec: {}
`);
  assert.equal(out.policies.size, 0);
  assert.deepEqual(out.rejected, []);
  expectOne(withSpec('').replace('v1alpha1', 'v1beta9'), 'apiVersion', /use nodemesh\.dev\/v1alpha1/);
});

test('each invalid field is rejected with its path and what to write', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['  loadBalancer: { type: LeastConn }', 'spec.loadBalancer.type', /"LeastConn" is not a load balancer type \(use one of RoundRobin, LeastRequest, EWMA, Random, ConsistentHash\)/],
    ['  loadBalancer: { type: ConsistentHash }', 'spec.loadBalancer.consistentHash', /required with type ConsistentHash/],
    ['  loadBalancer: { type: ConsistentHash, consistentHash: {} }', 'spec.loadBalancer.consistentHash.header', /required/],
    ['  loadBalancer: { type: ConsistentHash, consistentHash: { header: "x user" } }', 'spec.loadBalancer.consistentHash.header', /not a valid HTTP header name/],
    ['  loadBalancer: { type: Random, consistentHash: { header: x } }', 'spec.loadBalancer.consistentHash', /only with type ConsistentHash/],
    ['  outlierDetection: { maxEjectionPercent: 150 }', 'spec.outlierDetection.maxEjectionPercent', /from 0 to 100, got 150/],
    ['  outlierDetection: { consecutive5xxErrors: -1 }', 'spec.outlierDetection.consecutive5xxErrors', /integer >= 0, got -1/],
    ['  outlierDetection: { consecutive5xxErrors: "5" }', 'spec.outlierDetection.consecutive5xxErrors', /without quotes/],
    ['  outlierDetection: { consecutiveGatewayErrors: 2.5 }', 'spec.outlierDetection.consecutiveGatewayErrors', /integer/],
    ['  outlierDetection: { interval: 10 }', 'spec.outlierDetection.interval', /"10s" or "10ms"/],
    ['  outlierDetection: { interval: 0s }', 'spec.outlierDetection.interval', /longer than 0/],
    ['  outlierDetection: { baseEjectionTime: 1.5s }', 'spec.outlierDetection.baseEjectionTime', /"1\.5s" is not a duration/],
    ['  outlierDetection: { baseEjectionTime: 1m, maxEjectionTime: 30s }', 'spec.outlierDetection.maxEjectionTime', /at least baseEjectionTime \(1m\)/],
    ['  outlierDetection: { maxEjectionPercnt: 10 }', 'spec.outlierDetection.maxEjectionPercnt', /unknown field .*maxEjectionPercent/],
    ['  connectionPool: { maxRequests: 0 }', 'spec.connectionPool.maxRequests', /integer >= 1, got 0/],
    ['  connectionPool: { maxConnections: 0 }', 'spec.connectionPool.maxConnections', /integer >= 1/],
    ['  connectionPool: { maxPendingRequests: -5 }', 'spec.connectionPool.maxPendingRequests', /integer >= 0/],
    ['  connectionPool: 10', 'spec.connectionPool', /must be a mapping/],
    ['  faultInjection: { delay: { percentage: 10 } }', 'spec.faultInjection.delay.fixedDelay', /required \(a duration/],
    ['  faultInjection: { delay: { percentage: 101, fixedDelay: 1s } }', 'spec.faultInjection.delay.percentage', /from 0 to 100, got 101/],
    ['  faultInjection: { delay: { fixedDelay: 1s } }', 'spec.faultInjection.delay.percentage', /required/],
    ['  faultInjection: { abort: { percentage: 5 } }', 'spec.faultInjection.abort', /set one of httpStatus .* or grpcStatus/],
    ['  faultInjection: { abort: { percentage: 5, httpStatus: 503, grpcStatus: 14 } }', 'spec.faultInjection.abort', /only one of httpStatus and grpcStatus/],
    ['  faultInjection: { abort: { percentage: 5, httpStatus: 99 } }', 'spec.faultInjection.abort.httpStatus', /from 200 to 599, got 99/],
    ['  faultInjection: { abort: { percentage: 5, grpcStatus: 17 } }', 'spec.faultInjection.abort.grpcStatus', /from 1 to 16, got 17/],
    ['  rateLimit: { perSourceWorkload: true }', 'spec.rateLimit.tokenBucket', /required/],
    ['  rateLimit: { tokenBucket: { maxTokens: 0, tokensPerFill: 1, fillInterval: 1s } }', 'spec.rateLimit.tokenBucket.maxTokens', /integer >= 1, got 0/],
    ['  rateLimit: { tokenBucket: { maxTokens: 10, fillInterval: 1s } }', 'spec.rateLimit.tokenBucket.tokensPerFill', /required/],
    ['  rateLimit: { tokenBucket: { maxTokens: 10, tokensPerFill: 1, fillInterval: 1d } }', 'spec.rateLimit.tokenBucket.fillInterval', /is not a duration/],
    ['  rateLimit: { tokenBucket: { maxTokens: 10, tokensPerFill: 1, fillInterval: 1s }, perSourceWorkload: "yes" }', 'spec.rateLimit.perSourceWorkload', /true or false/],
    ['  retries: 3', 'spec.retries', /unknown field/],
  ];
  for (const [extra, path, pattern] of cases) {
    expectOne(withSpec(extra), path, pattern);
  }
});

test('targetRef problems', () => {
  const base = (ref: string) => `
apiVersion: nodemesh.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: p, namespace: demo }
spec:
${ref}`;
  expectOne(base('  loadBalancer: { type: Random }'), 'spec.targetRef', /required: the Service this policy attaches to/);
  expectOne(base('  targetRef: { kind: Deployment, name: b }'), 'spec.targetRef.kind', /"Deployment" is not supported/);
  expectOne(base('  targetRef: { group: apps, kind: Service, name: b }'), 'spec.targetRef.group', /"apps" is not supported/);
  expectOne(base('  targetRef: { kind: Service }'), 'spec.targetRef.name', /required/);
  expectOne(base('  targetRef: { kind: Service, name: B_1 }'), 'spec.targetRef.name', /not a valid Service name/);
  expectOne(base('  targetRef: { kind: Service, name: b, namespace: other }'), 'spec.targetRef.namespace', /own namespace \(demo\)/);
  expectOne(base('  targetRef: { name: b }'), 'spec.targetRef.kind', /required \(Service\)/);
  expectOne(`
apiVersion: nodemesh.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: p, namespace: demo }
`, 'spec', /required/);
  // core is an accepted spelling of the core group; namespace may repeat the policy's own.
  const ok = parse(base('  targetRef: { group: core, kind: Service, name: b, namespace: demo }'));
  assert.deepEqual(ok.rejected, []);
  assert.ok(ok.policies.has('demo/b'));
});

test('several bad fields in one object give one rejection each', () => {
  const rejected = rejectedOnly(withSpec('  outlierDetection: { maxEjectionPercent: 101, interval: 5 }\n  connectionPool: { maxRequests: 0 }'));
  assert.deepEqual(rejected.map((r) => r.path).sort(), ['spec.connectionPool.maxRequests', 'spec.outlierDetection.interval', 'spec.outlierDetection.maxEjectionPercent']);
});

test('two policies for one Service: the older wins and the other is rejected naming it', () => {
  const policy = (name: string, created: string | undefined, type: string) => `
apiVersion: nodemesh.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: ${name}, namespace: demo${created ? `, creationTimestamp: "${created}"` : ''} }
spec:
  targetRef: { kind: Service, name: b }
  loadBalancer: { type: ${type} }
`;
  // Older by timestamp wins although it comes later and sorts later.
  let out = parse([policy('a-new', '2024-06-01T00:00:00Z', 'Random'), policy('z-old', '2024-01-01T00:00:00Z', 'EWMA')].join('---'));
  assert.equal(out.policies.get('demo/b')!.key, 'demo/z-old');
  assert.equal(out.rejected.length, 1);
  assert.equal(out.rejected[0]!.object, 'TrafficPolicy demo/a-new');
  assert.equal(out.rejected[0]!.path, 'spec.targetRef');
  assert.match(out.rejected[0]!.reason, /Service demo\/b already has TrafficPolicy demo\/z-old .*created earlier \(2024-01-01T00:00:00\.000Z\)/);

  // Same age (or none): the name decides.
  out = parse([policy('b2', undefined, 'Random'), policy('b1', undefined, 'EWMA'), policy('b3', undefined, 'LeastRequest')].join('---'));
  assert.equal(out.policies.get('demo/b')!.key, 'demo/b1');
  assert.deepEqual(out.rejected.map((r) => r.object).sort(), ['TrafficPolicy demo/b2', 'TrafficPolicy demo/b3']);
  for (const r of out.rejected) assert.match(r.reason, /TrafficPolicy demo\/b1 .*name sorts first/);

  // An object with a creationTimestamp is older than one without.
  out = parse([policy('a', undefined, 'Random'), policy('b', '2030-01-01T00:00:00Z', 'EWMA')].join('---'));
  assert.equal(out.policies.get('demo/b')!.key, 'demo/b');
  assert.match(out.rejected[0]!.reason, /has a creationTimestamp/);

  // An invalid policy takes no part: the valid one applies without conflict.
  out = parse([policy('a', '2020-01-01T00:00:00Z', 'Nope'), policy('b', undefined, 'EWMA')].join('---'));
  assert.equal(out.policies.get('demo/b')!.key, 'demo/b');
  assert.equal(out.rejected.length, 1);
  assert.equal(out.rejected[0]!.path, 'spec.loadBalancer.type');

  // A bad timestamp is a field error.
  expectOne(policy('a', 'yesterday', 'Random'), 'metadata.creationTimestamp', /RFC 3339/);
});

test('policies of different Services and namespaces do not conflict', () => {
  const out = parse(`
apiVersion: nodemesh.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: p, namespace: demo }
spec: { targetRef: { kind: Service, name: b } }
---
apiVersion: nodemesh.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: p, namespace: other }
spec: { targetRef: { kind: Service, name: b } }
---
apiVersion: nodemesh.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: q, namespace: demo }
spec: { targetRef: { kind: Service, name: c } }
`);
  assert.deepEqual(out.rejected, []);
  assert.deepEqual([...out.policies.keys()].sort(), ['demo/b', 'demo/c', 'other/b']);
});
