import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pollUntil, sleep, withDeadline } from './deadline';

test('withDeadline: a promise that settles in time keeps its value or error', async () => {
  assert.equal(await withDeadline(Promise.resolve(7), 1000, 'seven'), 7);
  await assert.rejects(withDeadline(Promise.reject(new Error('boom')), 1000, 'boom'), /boom/);
});

test('withDeadline: a promise that never settles rejects with ERR_NM_DEADLINE naming what was awaited', async () => {
  const never = new Promise<void>(() => undefined);
  await assert.rejects(withDeadline(never, 20, 'the peer\'s GOAWAY', 'check the peer node'), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'ERR_NM_DEADLINE');
    assert.match(err.message, /the peer's GOAWAY did not finish within 20 ms; check the peer node/);
    return true;
  });
});

test('sleep: an abort ends it at once', async () => {
  const ac = new AbortController();
  let woke = false;
  const slept = sleep(60_000, ac.signal).then(() => { woke = true; });
  await sleep(1);
  assert.equal(woke, false);
  ac.abort();
  await slept;
  assert.equal(woke, true);
});

test('pollUntil: true once the condition holds; false at the deadline or on abort', async () => {
  let n = 0;
  assert.equal(await pollUntil(() => ++n >= 3, Date.now() + 10_000, undefined, 1), true);
  assert.equal(n, 3);
  assert.equal(await pollUntil(() => false, Date.now() + 10), false);
  const ac = new AbortController();
  ac.abort();
  assert.equal(await pollUntil(() => false, Date.now() + 60_000, ac.signal), false);
});
