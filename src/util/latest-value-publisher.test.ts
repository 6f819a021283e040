import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LatestValuePublisher } from './latest-value-publisher';

test('one write at a time, the newest value wins, and a failed write is retried until it lands', async () => {
  const written: string[] = [];
  const errors: unknown[] = [];
  let fail = 1;
  let release!: () => void;
  let gate = new Promise<void>((r) => { release = r; });
  const p = new LatestValuePublisher<string>(async (v) => {
    await gate;
    if (fail-- > 0) throw new Error('API down');
    written.push(v);
  }, (err) => errors.push(err), 5);
  p.publish('a');
  p.publish('b');
  p.publish('c');
  release();
  gate = Promise.resolve();
  const deadline = Date.now() + 5000;
  while (p.busy && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.equal(errors.length, 1, 'the first write failed once');
  assert.deepEqual(written.at(-1), 'c', 'the newest value is the one that stays');
  assert.ok(!written.includes('b'), `a value replaced before its turn is never written: ${written.join(',')}`);
  p.stop();
});

test('stop: nothing more is written or retried', async () => {
  let calls = 0;
  const p = new LatestValuePublisher<number>(async () => { calls++; throw new Error('down'); }, () => undefined, 5);
  p.publish(1);
  await new Promise((r) => setImmediate(r));
  p.stop();
  const after = calls;
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(calls, after);
  p.publish(2);
  assert.equal(calls, after);
});

test('whenWritten: true once the latest value landed (after a retry), false at its deadline while writes fail', async () => {
  let fail = 1;
  const written: number[] = [];
  const p = new LatestValuePublisher<number>(async (v) => { if (fail-- > 0) throw new Error('down'); written.push(v); }, () => undefined, 5);
  p.publish(7);
  assert.equal(await p.whenWritten(5000), true);
  assert.deepEqual(written, [7]);
  const never = new LatestValuePublisher<number>(async () => { throw new Error('down'); }, () => undefined, 5);
  never.publish(1);
  assert.equal(await never.whenWritten(50), false);
  never.stop();
  p.stop();
});
