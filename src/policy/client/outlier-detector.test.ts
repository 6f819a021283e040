import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OutlierDetector, type Ejection } from './outlier-detector';
import { OUTLIER_DEFAULTS, type OutlierDetectionConfig } from './traffic-policy';

function setup(cfg: Partial<OutlierDetectionConfig> = {}, count = 10) {
  const clock = { now: 0 };
  const ejected: Ejection[] = [];
  const od = new OutlierDetector({ ...OUTLIER_DEFAULTS, maxEjectionPercent: 100, ...cfg }, { now: () => clock.now, onEject: (e) => ejected.push(e) });
  const eps = Array.from({ length: count }, (_, i) => ({ key: `10.0.0.${i + 1}:80` }));
  od.setEndpoints(eps.map((e) => e.key));
  const fail = (key: string, times: number, outcome: { status?: number; connectFailure?: boolean } = { status: 500 }) => {
    for (let i = 0; i < times; i++) od.record(key, outcome);
  };
  return { clock, od, eps, fail, ejected };
}

test('5 consecutive 5xx eject; 4 do not', () => {
  const { od, eps, fail, ejected } = setup();
  const a = eps[0]!.key;
  fail(a, 4);
  assert.equal(od.isEjected(a), false);
  fail(a, 1, { status: 503 });
  assert.equal(od.isEjected(a), true);
  assert.deepEqual(od.ejections(), [{ key: a, until: 30_000, times: 1 }]);
  assert.deepEqual(ejected, [{ key: a, until: 30_000, times: 1 }]);
  assert.deepEqual(
    od.filter(eps).map((e) => e.key),
    eps.slice(1).map((e) => e.key),
  );
});

test('a success resets the count; 4xx and no-status outcomes are successes', () => {
  const { od, eps, fail } = setup();
  const a = eps[0]!.key;
  fail(a, 4);
  od.record(a, { status: 200 });
  fail(a, 4);
  od.record(a, { status: 404 });
  fail(a, 4);
  od.record(a, {}); // a TCP connection that worked
  fail(a, 4);
  assert.equal(od.isEjected(a), false);
  fail(a, 1);
  assert.equal(od.isEjected(a), true);
});

test('connect failures count as 5xx', () => {
  const { od, eps, fail } = setup();
  fail(eps[0]!.key, 5, { connectFailure: true });
  assert.equal(od.isEjected(eps[0]!.key), true);
});

test('an ejection ends after baseEjectionTime; the second lasts twice as long, capped at maxEjectionTime', () => {
  const { clock, od, eps, fail } = setup({ baseEjectionTimeMs: 30_000, maxEjectionTimeMs: 70_000, intervalMs: 10_000 });
  const a = eps[0]!.key;
  fail(a, 5);
  clock.now = 29_999;
  assert.equal(od.isEjected(a), true);
  clock.now = 30_000;
  assert.equal(od.isEjected(a), false);
  assert.equal(od.filter(eps).length, 10);
  assert.deepEqual(od.ejections(), []);

  fail(a, 5);
  assert.deepEqual(od.ejections(), [{ key: a, until: 90_000, times: 2 }]);
  clock.now = 89_999;
  assert.equal(od.isEjected(a), true);
  clock.now = 90_000;
  assert.equal(od.isEjected(a), false);

  fail(a, 5); // third: 90s, capped at 70s
  assert.deepEqual(od.ejections(), [{ key: a, until: 160_000, times: 3 }]);
});

test('errors reported while ejected do not extend the ejection', () => {
  const { clock, od, eps, fail } = setup();
  const a = eps[0]!.key;
  fail(a, 5);
  clock.now = 10_000;
  fail(a, 20);
  assert.deepEqual(od.ejections(), [{ key: a, until: 30_000, times: 1 }]);
  clock.now = 30_000;
  fail(a, 4); // counters started again from zero when it came back
  assert.equal(od.isEjected(a), false);
});

test('the multiplier decays by one per interval of health', () => {
  const { clock, od, eps, fail } = setup({ baseEjectionTimeMs: 30_000, intervalMs: 10_000 });
  const a = eps[0]!.key;
  fail(a, 5); // times 1, back at 30s
  clock.now = 30_000;
  fail(a, 5); // times 2, 60s, back at 90s
  clock.now = 90_000 + 10_000; // one healthy interval: times 2 -> 1
  fail(a, 5);
  assert.deepEqual(od.ejections(), [{ key: a, until: 100_000 + 60_000, times: 2 }]);
  clock.now = 160_000 + 50_000; // long healthy stretch: back to zero
  fail(a, 5);
  assert.deepEqual(od.ejections(), [{ key: a, until: 210_000 + 30_000, times: 1 }]);
});

test('maxEjectionPercent caps ejections: 10 endpoints at 10% -> one at a time', () => {
  const { clock, od, eps, fail } = setup({ maxEjectionPercent: 10 });
  for (const ep of eps) fail(ep.key, 5);
  assert.equal(od.ejections().length, 1);
  assert.equal(od.filter(eps).length, 9);
  // When the first comes back, the next failing endpoint can go (at its next error).
  clock.now = 30_000;
  assert.equal(od.ejections().length, 0);
  fail(eps[5]!.key, 1);
  assert.deepEqual(
    od.ejections().map((e) => e.key),
    [eps[5]!.key],
  );
  fail(eps[6]!.key, 1);
  assert.equal(od.ejections().length, 1);
});

test('a lone endpoint is never ejected; at most all but one', () => {
  const single = setup({ maxEjectionPercent: 100 }, 1);
  single.fail(single.eps[0]!.key, 50);
  assert.equal(single.od.isEjected(single.eps[0]!.key), false);
  assert.equal(single.od.filter(single.eps).length, 1);

  const three = setup({ maxEjectionPercent: 100 }, 3);
  for (const ep of three.eps) three.fail(ep.key, 5);
  assert.equal(three.od.ejections().length, 2);
  assert.equal(three.od.filter(three.eps).length, 1);

  // 10% of 5 endpoints is less than one: nobody is ejected.
  const five = setup({ maxEjectionPercent: 10 }, 5);
  five.fail(five.eps[0]!.key, 50);
  assert.equal(five.od.ejections().length, 0);
});

test('filter never drops below (100 - maxEjectionPercent)% nor to zero when endpoints went away', () => {
  const { od, eps, fail } = setup({ maxEjectionPercent: 50 });
  for (const ep of eps.slice(0, 5)) fail(ep.key, 5);
  assert.equal(od.ejections().length, 5);
  assert.equal(od.filter(eps).length, 5);
  // Only 4 endpoints left, 3 of them ejected: at least 2 (50%) come back, earliest first.
  const left = [eps[0]!, eps[1]!, eps[2]!, eps[9]!];
  const kept = od.filter(left);
  assert.equal(kept.length, 2);
  assert.deepEqual(
    kept.map((e) => e.key),
    [eps[0]!.key, eps[9]!.key],
    'keeps the input order',
  );
  // Every one of them ejected: one is let through.
  assert.equal(od.filter([eps[0]!, eps[1]!]).length, 1);
});

test('gateway errors are counted separately from 5xx', () => {
  const { od, eps, fail } = setup({ consecutive5xxErrors: 0, consecutiveGatewayErrors: 3 });
  const [a, b, c, d] = eps.map((e) => e.key);
  fail(a!, 10, { status: 500 }); // 5xx detection off; 500 is not a gateway error
  assert.equal(od.isEjected(a!), false);
  fail(b!, 3, { status: 502 });
  assert.equal(od.isEjected(b!), true);
  fail(c!, 2, { status: 504 });
  fail(c!, 1, { connectFailure: true });
  assert.equal(od.isEjected(c!), true);
  // A 500 ends a run of gateway errors.
  fail(d!, 2, { status: 503 });
  fail(d!, 1, { status: 500 });
  fail(d!, 2, { status: 503 });
  assert.equal(od.isEjected(d!), false);
  fail(d!, 1, { status: 503 });
  assert.equal(od.isEjected(d!), true);
});

test('5xx and gateway thresholds together: whichever is reached first ejects', () => {
  const { od, eps, fail } = setup({ consecutive5xxErrors: 5, consecutiveGatewayErrors: 2 });
  fail(eps[0]!.key, 2, { status: 502 });
  assert.equal(od.isEjected(eps[0]!.key), true);
  fail(eps[1]!.key, 3, { status: 500 });
  fail(eps[1]!.key, 1, { status: 502 });
  assert.equal(od.isEjected(eps[1]!.key), false);
  fail(eps[1]!.key, 1, { status: 500 });
  assert.equal(od.isEjected(eps[1]!.key), true);
});

test('both thresholds 0: never ejects; state of vanished endpoints is dropped', () => {
  const off = setup({ consecutive5xxErrors: 0, consecutiveGatewayErrors: 0 });
  assert.equal(off.od.enabled, false);
  off.fail(off.eps[0]!.key, 100, { connectFailure: true });
  assert.equal(off.od.isEjected(off.eps[0]!.key), false);

  const { od, eps, fail } = setup();
  fail(eps[0]!.key, 5);
  od.setEndpoints(eps.slice(1).map((e) => e.key));
  assert.deepEqual(od.ejections(), []);
});
