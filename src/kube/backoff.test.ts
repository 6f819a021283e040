import assert from 'node:assert/strict';
import test from 'node:test';
import { Backoff } from './backoff';

test('backoff doubles from initialMs to the cap, with jitter in [base/2, base], and resets', () => {
  const low = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0 });
  assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => low.next()), [50, 100, 200, 400, 500, 500]);
  const high = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0.999999 });
  assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => high.next()), [100, 200, 400, 800, 1000, 1000]);
  assert.equal(high.failures, 6);
  high.reset();
  assert.equal(high.failures, 0);
  assert.equal(high.next(), 100);
  // Defaults: 200 ms doubling to 30 s.
  const d = new Backoff({ random: () => 0.999999 });
  const delays = Array.from({ length: 12 }, () => d.next());
  assert.equal(delays[0], 200);
  assert.equal(delays[11], 30000);
});
