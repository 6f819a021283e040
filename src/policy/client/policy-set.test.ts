import { test } from 'node:test';
import assert from 'node:assert/strict';
import { endpointKey } from './load-balancer';
import { mulberry32 } from './random';
import { PolicyRegistry, stableStringify } from './policy-set';
import type { TrafficPolicy } from './traffic-policy';

function policy(overrides: Partial<TrafficPolicy> = {}): TrafficPolicy {
  return {
    key: 'demo/b-policy',
    namespace: 'demo',
    name: 'b-policy',
    file: 'mesh.yaml',
    targetService: 'demo/b',
    loadBalancer: { type: 'RoundRobin' },
    outlierDetection: {
      consecutive5xxErrors: 5,
      consecutiveGatewayErrors: 0,
      intervalMs: 10_000,
      baseEjectionTimeMs: 30_000,
      maxEjectionTimeMs: 300_000,
      maxEjectionPercent: 50,
    },
    connectionPool: { maxConnections: 10, maxPendingRequests: 5, maxRequests: 2 },
    faultInjection: { abort: { percentage: 100, httpStatus: 503 } },
    rateLimit: { tokenBucket: { maxTokens: 3, tokensPerFill: 3, fillIntervalMs: 1000 }, perSourceWorkload: true },
    ...overrides,
  };
}

/** A fresh copy, as a new snapshot would parse it. */
const copy = (p: TrafficPolicy): TrafficPolicy => structuredClone(p);

const EPS = Array.from({ length: 4 }, (_, i) => ({ key: endpointKey(`10.0.0.${i + 1}`, 80), address: `10.0.0.${i + 1}` }));

test('a Service without a policy gets the default: RoundRobin and nothing else', () => {
  const registry = new PolicyRegistry({ now: () => 0, random: mulberry32(1) });
  const sp = registry.forService('demo/none');
  assert.equal(sp.policy, undefined);
  assert.equal(sp.lb.type, 'RoundRobin');
  assert.equal(sp.outliers, undefined);
  assert.equal(sp.limiter, undefined);
  assert.equal(sp.connections, undefined);
  assert.equal(sp.rateLimiter, undefined);
  assert.deepEqual(sp.decideFault(), {});
  assert.equal(registry.forService('demo/none'), sp, 'the same object, so round robin keeps its place');
  const seen = new Set([0, 1, 2, 3].map(() => sp.pick(EPS)!.key));
  assert.equal(seen.size, 4);
});

test('a policy wires every component, and pick() skips ejected endpoints', () => {
  const registry = new PolicyRegistry({ now: () => 0, random: mulberry32(1) });
  registry.update(new Map([['demo/b', policy()]]));
  const sp = registry.forService('demo/b');
  assert.equal(sp.policy!.key, 'demo/b-policy');
  assert.equal(sp.limiter!.maxRequests, 2);
  assert.equal(sp.connections!.maxConnections, 10);
  assert.ok(sp.rateLimiter);
  assert.deepEqual(sp.decideFault(), { abortStatus: 503 });
  sp.pick(EPS); // the proxy picks before it records: the detector learns there are 4 endpoints
  for (let i = 0; i < 5; i++) sp.outliers!.record(EPS[0]!.key, { status: 500 });
  for (let i = 0; i < 40; i++) {
    const ep = sp.pick(EPS);
    assert.notEqual(ep!.key, EPS[0]!.key);
    assert.equal(typeof ep!.address, 'string', 'pick returns the caller’s own endpoint objects');
  }
});

test('update() keeps state for an unchanged policy, even as a new object', async () => {
  const registry = new PolicyRegistry({ now: () => 0, random: mulberry32(1) });
  const p = policy();
  registry.update(new Map([['demo/b', p]]));
  const sp = registry.forService('demo/b');
  sp.pick(EPS);
  for (let i = 0; i < 5; i++) sp.outliers!.record(EPS[0]!.key, { status: 500 });
  const release = await sp.limiter!.acquire();
  for (let i = 0; i < 3; i++) assert.equal(sp.rateLimiter!.tryTake('demo/a'), true);

  registry.update(new Map([['demo/b', copy(p)]]));
  assert.equal(registry.forService('demo/b'), sp, 'same ServicePolicy object');
  assert.equal(sp.outliers!.isEjected(EPS[0]!.key), true);
  assert.equal(sp.limiter!.active, 1);
  assert.equal(sp.rateLimiter!.tryTake('demo/a'), false);
  release();
});

test('a changed section is rebuilt alone; a resized pool keeps requests in flight counted', async () => {
  const registry = new PolicyRegistry({ now: () => 0, random: mulberry32(1) });
  const p = policy();
  registry.update(new Map([['demo/b', p]]));
  const before = registry.forService('demo/b');
  before.pick(EPS);
  for (let i = 0; i < 5; i++) before.outliers!.record(EPS[0]!.key, { status: 500 });
  const release = await before.limiter!.acquire();

  // Fault injection and pool change; outlier detection, balancer and rate limit do not.
  registry.update(new Map([['demo/b', copy({ ...p, faultInjection: {}, connectionPool: { maxConnections: 10, maxPendingRequests: 5, maxRequests: 1 } })]]));
  const after = registry.forService('demo/b');
  assert.notEqual(after, before);
  assert.deepEqual(after.decideFault(), {});
  assert.equal(after.outliers, before.outliers);
  assert.equal(after.lb, before.lb);
  assert.equal(after.rateLimiter, before.rateLimiter);
  assert.equal(after.limiter, before.limiter);
  assert.equal(after.limiter!.maxRequests, 1);
  assert.equal(after.limiter!.active, 1);
  assert.equal(after.limiter!.tryAcquire(), undefined, 'the request in flight still holds the only slot');
  release();
  assert.equal(after.limiter!.active, 0);

  // Outlier settings change: a fresh detector (ejections forgotten); a new balancer type too.
  registry.update(new Map([['demo/b', copy({ ...p, loadBalancer: { type: 'LeastRequest' }, outlierDetection: { ...p.outlierDetection!, consecutive5xxErrors: 3 } })]]));
  const third = registry.forService('demo/b');
  assert.notEqual(third.outliers, before.outliers);
  assert.equal(third.outliers!.isEjected(EPS[0]!.key), false);
  assert.equal(third.lb.type, 'LeastRequest');
});

test('a removed policy falls back to the default; dead Services are forgotten', () => {
  const registry = new PolicyRegistry({ now: () => 0, random: mulberry32(1) });
  registry.update(new Map([['demo/b', policy()]]));
  const rr = registry.forService('demo/b').lb;
  registry.forService('demo/c');
  registry.update(new Map());
  const sp = registry.forService('demo/b');
  assert.equal(sp.policy, undefined);
  assert.equal(sp.outliers, undefined);
  assert.equal(sp.limiter, undefined);
  assert.equal(sp.lb, rr, 'RoundRobin both before and after: the balancer is kept');
  assert.deepEqual(
    registry.status().map((s) => s.service),
    ['demo/b', 'demo/c'],
  );
  registry.update(new Map(), ['demo/c']);
  assert.deepEqual(
    registry.status().map((s) => s.service),
    ['demo/c'],
  );
});

test('outlier detection with both thresholds 0 creates no detector; status() reports state', async () => {
  const registry = new PolicyRegistry({ now: () => 0, random: mulberry32(1) });
  const p = policy();
  registry.update(
    new Map([
      ['demo/b', p],
      ['demo/off', policy({ key: 'demo/off', targetService: 'demo/off', outlierDetection: { ...p.outlierDetection!, consecutive5xxErrors: 0 } })],
    ]),
  );
  assert.equal(registry.forService('demo/off').outliers, undefined);
  const sp = registry.forService('demo/b');
  sp.pick(EPS);
  for (let i = 0; i < 5; i++) sp.outliers!.record(EPS[1]!.key, { status: 502 });
  const release = await sp.limiter!.acquire();
  const status = registry.status().find((s) => s.service === 'demo/b')!;
  assert.deepEqual(status, {
    service: 'demo/b',
    policy: 'demo/b-policy',
    loadBalancer: 'RoundRobin',
    ejections: [{ key: EPS[1]!.key, until: 30_000, times: 1 }],
    active: 1,
    pending: 0,
    connections: 0,
    rateLimitBuckets: 0,
  });
  release();
});

test('stableStringify ignores key order and undefined fields', () => {
  assert.equal(stableStringify({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: undefined } }), stableStringify({ a: { d: [1, { x: 1, y: 2 }] }, b: 1 }));
  assert.notEqual(stableStringify({ a: 1 }), stableStringify({ a: 2 }));
});
