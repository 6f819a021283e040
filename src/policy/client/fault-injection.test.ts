import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decideFault } from './fault-injection';
import { mulberry32 } from './random';

test('a 10% delay hits 10% ± 0.5% of 100,000 requests', () => {
  const random = mulberry32(20240501);
  let delayed = 0;
  for (let i = 0; i < 100_000; i++) {
    const d = decideFault({ delay: { percentage: 10, fixedDelayMs: 100 } }, random);
    if (d.delayMs !== undefined) {
      assert.equal(d.delayMs, 100);
      delayed++;
    }
    assert.equal(d.abortStatus, undefined);
  }
  assert.ok(Math.abs(delayed / 100_000 - 0.1) < 0.005, `${delayed}`);
});

test('delay and abort are independent draws', () => {
  const random = mulberry32(7);
  let delayed = 0;
  let aborted = 0;
  let both = 0;
  const n = 100_000;
  for (let i = 0; i < n; i++) {
    const d = decideFault({ delay: { percentage: 50, fixedDelayMs: 5 }, abort: { percentage: 20, httpStatus: 503 } }, random);
    if (d.delayMs !== undefined) delayed++;
    if (d.abortStatus !== undefined) {
      assert.equal(d.abortStatus, 503);
      aborted++;
    }
    if (d.delayMs !== undefined && d.abortStatus !== undefined) both++;
  }
  assert.ok(Math.abs(delayed / n - 0.5) < 0.005, `${delayed}`);
  assert.ok(Math.abs(aborted / n - 0.2) < 0.005, `${aborted}`);
  assert.ok(Math.abs(both / n - 0.1) < 0.005, `${both}`);
});

test('0% never, 100% always, gRPC status, and no config', () => {
  const random = mulberry32(1);
  for (let i = 0; i < 1000; i++) {
    assert.deepEqual(decideFault({ abort: { percentage: 0, httpStatus: 500 } }, random), {});
    assert.deepEqual(decideFault({ abort: { percentage: 100, grpcStatus: 14 } }, random), { abortGrpcStatus: 14 });
  }
  assert.deepEqual(decideFault({ abort: { percentage: 100, grpcStatus: 14 } }, () => 0.9999999999), { abortGrpcStatus: 14 });
  assert.deepEqual(decideFault(undefined, random), {});
  assert.deepEqual(decideFault({}, random), {});
});
