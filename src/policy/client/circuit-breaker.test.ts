import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';
import { NodemeshError } from '../../errors';
import { ConcurrencyLimiter, ConnectionLimiter, type Release } from './circuit-breaker';

/** Tracks a promise's state without awaiting it. */
function track<T>(promise: Promise<T>): { state: 'pending' | 'resolved' | 'rejected'; value?: T; error?: unknown } {
  const t: { state: 'pending' | 'resolved' | 'rejected'; value?: T; error?: unknown } = { state: 'pending' };
  promise.then(
    (value) => Object.assign(t, { state: 'resolved', value }),
    (error) => Object.assign(t, { state: 'rejected', error }),
  );
  return t;
}

test('at most maxRequests at once, then a FIFO queue of maxPendingRequests, then immediate overflow', async () => {
  const limiter = new ConcurrencyLimiter({ maxRequests: 2, maxPendingRequests: 2 }, 'Service demo/b');
  const r1 = await limiter.acquire();
  const r2 = await limiter.acquire();
  assert.equal(limiter.active, 2);
  const w1 = track(limiter.acquire());
  const w2 = track(limiter.acquire());
  await tick();
  assert.equal(w1.state, 'pending');
  assert.equal(w2.state, 'pending');
  assert.equal(limiter.pending, 2);

  // The queue is full: the next one is refused at once.
  const started = Date.now();
  await assert.rejects(limiter.acquire(), (err: unknown) => {
    assert.ok(err instanceof NodemeshError);
    assert.equal(err.code, 'ERR_NM_OVERFLOW');
    assert.match(err.message, /Service demo\/b: overflow: 2 requests in flight \(maxRequests 2\) and 2 waiting \(maxPendingRequests 2\)/);
    assert.match(err.message, /503 \(response flag UO\)/);
    assert.equal(err.details.responseFlag, 'UO');
    return true;
  });
  assert.ok(Date.now() - started < 50);
  assert.equal(limiter.tryAcquire(), undefined);

  // Releasing admits the waiters in arrival order.
  r1();
  await tick();
  assert.equal(w1.state, 'resolved');
  assert.equal(w2.state, 'pending');
  assert.equal(limiter.active, 2);
  assert.equal(limiter.pending, 1);
  r1(); // a second call is ignored
  await tick();
  assert.equal(w2.state, 'pending');
  assert.equal(limiter.active, 2);
  r2();
  await tick();
  assert.equal(w2.state, 'resolved');
  assert.equal(limiter.pending, 0);
  w1.value!();
  w2.value!();
  assert.equal(limiter.active, 0);
  const r = limiter.tryAcquire();
  assert.ok(r);
  r();
});

test('FIFO order holds across many waiters', async () => {
  const limiter = new ConcurrencyLimiter({ maxRequests: 1, maxPendingRequests: 10 });
  const first = await limiter.acquire();
  const order: number[] = [];
  const waits = Array.from({ length: 5 }, (_, i) =>
    limiter.acquire().then((release) => {
      order.push(i);
      release();
    }),
  );
  first();
  await Promise.all(waits);
  assert.deepEqual(order, [0, 1, 2, 3, 4]);
  assert.equal(limiter.active, 0);
});

test('an aborted waiter leaves the queue and the next one gets the slot', async () => {
  const limiter = new ConcurrencyLimiter({ maxRequests: 1, maxPendingRequests: 2 });
  const r1 = await limiter.acquire();
  const ac = new AbortController();
  const w1 = track(limiter.acquire(ac.signal));
  const w2 = track(limiter.acquire());
  await tick();
  assert.equal(limiter.pending, 2);
  ac.abort();
  await tick();
  assert.equal(w1.state, 'rejected');
  assert.equal((w1.error as NodemeshError).code, 'ERR_NM_ABORTED');
  assert.equal(limiter.pending, 1);
  // The freed queue place can be taken again.
  const w3 = track(limiter.acquire());
  await tick();
  assert.equal(w3.state, 'pending');
  r1();
  await tick();
  assert.equal(w2.state, 'resolved');
  assert.equal(w3.state, 'pending');
  w2.value!();
  await tick();
  assert.equal(w3.state, 'resolved');
  w3.value!();
  assert.equal(limiter.active, 0);
  // An already aborted signal is refused without queueing.
  await assert.rejects(limiter.acquire(AbortSignal.abort()), { code: 'ERR_NM_ABORTED' });
  assert.equal(limiter.pending, 0);
  // Aborting after the slot was granted changes nothing.
  const ac2 = new AbortController();
  const granted = await limiter.acquire(ac2.signal);
  ac2.abort();
  assert.equal(limiter.active, 1);
  granted();
});

test('maxPendingRequests 0: no queue, overflow as soon as all slots are taken', async () => {
  const limiter = new ConcurrencyLimiter({ maxRequests: 1, maxPendingRequests: 0 });
  const r: Release = await limiter.acquire();
  await assert.rejects(limiter.acquire(), { code: 'ERR_NM_OVERFLOW' });
  r();
  (await limiter.acquire())();
});

test('update() resizes while keeping requests in flight counted', async () => {
  const limiter = new ConcurrencyLimiter({ maxRequests: 1, maxPendingRequests: 3 });
  const r1 = await limiter.acquire();
  const waits = [track(limiter.acquire()), track(limiter.acquire()), track(limiter.acquire())];
  await tick();
  limiter.update({ maxRequests: 2, maxPendingRequests: 1 });
  await tick();
  assert.deepEqual(
    waits.map((w) => w.state),
    ['resolved', 'pending', 'rejected'],
  );
  assert.equal((waits[2]!.error as NodemeshError).code, 'ERR_NM_OVERFLOW');
  assert.equal(limiter.active, 2);
  r1();
  await tick();
  assert.equal(waits[1]!.state, 'resolved');
  waits[0]!.value!();
  waits[1]!.value!();
  assert.equal(limiter.active, 0);
});

test('ConnectionLimiter counts connections up to maxConnections', () => {
  const conns = new ConnectionLimiter(2);
  const a = conns.tryAcquire()!;
  const b = conns.tryAcquire()!;
  assert.equal(conns.tryAcquire(), undefined);
  a();
  a();
  assert.equal(conns.active, 1);
  const c = conns.tryAcquire();
  assert.ok(c);
  conns.update(1);
  assert.equal(conns.tryAcquire(), undefined);
  b();
  c();
  assert.equal(conns.active, 0);
});
