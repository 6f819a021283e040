import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { once } from 'node:events';
import { readableSource } from './body-adapters';
import type { BodySink, BodySource } from './exchange';
import { RetainedBody } from './retained-body';

/** A sink that records what it got; `open: false` makes it report back-pressure. */
function recorder(): BodySink & { chunks: string[]; ended: boolean; failed?: Error } {
  const r = {
    chunks: [] as string[],
    ended: false,
    failed: undefined as Error | undefined,
    write(chunk: Buffer) { r.chunks.push(chunk.toString()); return true; },
    end() { r.ended = true; },
    fail(err: Error) { r.failed = err; },
  };
  return r;
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

function liveBody(): { input: PassThrough; source: BodySource } {
  const input = new PassThrough();
  return { input, source: readableSource(input) };
}

test('a retry after a refused attempt gets every byte so far, then the live rest, in order', async () => {
  const { input, source } = liveBody();
  const body = new RetainedBody(source, 1024);
  const first = recorder();
  body.first().start(first);
  input.write('a');
  input.write('b');
  await tick();
  assert.deepEqual(first.chunks, ['a', 'b']);
  // The attempt failed before the upstream processed anything: send it all again.
  const next = body.again();
  assert.ok(next, 'the body can be sent again');
  input.write('c'); // arrives between the attempts: held, not lost
  await tick();
  const second = recorder();
  next.start(second);
  input.end('d');
  await once(input, 'end');
  await tick();
  assert.deepEqual(second.chunks.join(''), 'abcd');
  assert.equal(second.ended, true);
  assert.deepEqual(first.chunks, ['a', 'b'], 'the failed attempt got nothing more');
});

test('a body that ended during the first attempt is replayed whole, end included', async () => {
  const { input, source } = liveBody();
  const body = new RetainedBody(source, 1024);
  const first = recorder();
  body.first().start(first);
  input.end('all');
  await once(input, 'end');
  await tick();
  const second = recorder();
  body.again()!.start(second);
  assert.deepEqual(second.chunks, ['all']);
  assert.equal(second.ended, true);
});

test('no second attempt once the upstream answered, or once the body outgrew what is kept', async () => {
  const answered = new RetainedBody(liveBody().source, 1024);
  answered.first().start(recorder());
  answered.answered();
  assert.equal(answered.again(), undefined);

  const { input, source } = liveBody();
  const big = new RetainedBody(source, 4);
  const sink = recorder();
  big.first().start(sink);
  input.write('12345');
  await tick();
  assert.deepEqual(sink.chunks, ['12345'], 'passed on all the same');
  assert.equal(big.again(), undefined, 'not kept: a retry would lose bytes');
});

test('a body that broke off is not sent again', async () => {
  const { input, source } = liveBody();
  const body = new RetainedBody(source, 1024);
  const sink = recorder();
  body.first().start(sink);
  input.destroy(new Error('client went away'));
  await tick();
  assert.match(String(sink.failed?.message), /client went away/);
  assert.equal(body.again(), undefined);
});
