import { test } from 'node:test';
import assert from 'node:assert/strict';
import { splitSamples, switchWindow } from './handover-bench';

test('switchWindow: from 0.5 s before the hand-over was seen to 0.5 s after it was done; the serving moment without the agents\' view', () => {
  assert.deepEqual(switchWindow({ spawnedAt: 10_000, readyMs: 3000, handoverSeenAt: 12_000, handoverDoneAt: 12_200 }), { fromMs: 11_500, toMs: 12_700 });
  assert.deepEqual(switchWindow({ spawnedAt: 10_000, readyMs: 3000 }), { fromMs: 12_500, toMs: 13_500 });
  assert.deepEqual(switchWindow({ spawnedAt: 10_000, readyMs: 3000, handoverSeenAt: 12_000 }), { fromMs: 11_500, toMs: 13_500 });
});

test('splitSamples: latencies inside any window are the blip, the others the reference', () => {
  const samples: Array<[number, number]> = [];
  for (let t = 0; t < 10_000; t += 10) samples.push([t, t >= 4000 && t <= 5000 ? 50 : 1]);
  const { around, rest, per } = splitSamples(samples, [{ fromMs: 4000, toMs: 5000 }, { fromMs: 8000, toMs: 8100 }]);
  assert.equal(around.n + rest.n, samples.length);
  assert.equal(per[0]!.n, 101);
  assert.equal(per[1]!.n, 11);
  assert.ok(Math.abs(per[0]!.p50 - 50) < 0.1, String(per[0]!.p50));
  assert.ok(Math.abs(rest.p99 - 1) < 0.01, String(rest.p99));
  assert.ok(Math.abs(per[1]!.p99 - 1) < 0.01);
});
