import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ensureRequestId, ensureTraceContext, parseTraceparent, type RandomBytes } from './trace-context';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';
const VALID = `00-${TRACE_ID}-${PARENT}-01`;
const TRACEPARENT_SHAPE = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** Deterministic bytes: 0x11, 0x12, ... */
function counter(start = 0x11): RandomBytes {
  let next = start;
  return (size) => {
    const out = new Uint8Array(size);
    for (let i = 0; i < size; i++) out[i] = next++ & 0xff;
    return out;
  };
}

test('a valid traceparent keeps its trace id and flags and gets the proxy\'s span id', () => {
  for (const flags of ['01', '00', '03']) {
    const ctx = ensureTraceContext({ traceparent: `00-${TRACE_ID}-${PARENT}-${flags}` });
    assert.equal(ctx.created, false);
    assert.equal(ctx.traceId, TRACE_ID);
    assert.equal(ctx.parentSpanId, PARENT);
    assert.equal(ctx.flags, flags);
    assert.match(ctx.spanId, /^[0-9a-f]{16}$/);
    assert.notEqual(ctx.spanId, PARENT);
    assert.notEqual(ctx.spanId, '0000000000000000');
    assert.equal(ctx.traceparent, `00-${TRACE_ID}-${ctx.spanId}-${flags}`);
  }
  // Each request through the proxy is its own span.
  const a = ensureTraceContext({ traceparent: VALID });
  const b = ensureTraceContext({ traceparent: VALID });
  assert.notEqual(a.spanId, b.spanId);
});

test('the injected random source makes the span id', () => {
  const ctx = ensureTraceContext({ traceparent: VALID }, counter());
  assert.equal(ctx.spanId, '1112131415161718');
  assert.equal(ctx.traceparent, `00-${TRACE_ID}-1112131415161718-01`);
  const fresh = ensureTraceContext({}, counter());
  assert.equal(fresh.spanId, '1112131415161718');
  assert.equal(fresh.traceId, '191a1b1c1d1e1f202122232425262728');
});

test('a missing traceparent starts a trace', () => {
  const ctx = ensureTraceContext({ 'x-other': 'y' });
  assert.equal(ctx.created, true);
  assert.equal(ctx.parentSpanId, undefined);
  assert.match(ctx.traceId, /^[0-9a-f]{32}$/);
  assert.notEqual(ctx.traceId, '0'.repeat(32));
  assert.match(ctx.traceparent, TRACEPARENT_SHAPE);
  assert.equal(ctx.traceparent, `00-${ctx.traceId}-${ctx.spanId}-01`);
  assert.equal(ensureTraceContext({}, undefined, { sampleNew: false }).flags, '00');
  // Fresh traces are distinct.
  assert.notEqual(ensureTraceContext({}).traceId, ensureTraceContext({}).traceId);
});

test('every invalid traceparent is replaced by a fresh trace', () => {
  const invalid: Array<[string, string | string[]]> = [
    ['empty', ''],
    ['too short', VALID.slice(0, 54)],
    ['too long for version 00', `${VALID}-extra`],
    ['one character too long', `${VALID}0`],
    ['uppercase trace id', `00-${TRACE_ID.toUpperCase()}-${PARENT}-01`],
    ['uppercase span id', `00-${TRACE_ID}-00F067AA0BA902B7-01`],
    ['uppercase flags', `00-${TRACE_ID}-${PARENT}-0A`],
    ['uppercase version', `0A-${TRACE_ID}-${PARENT}-01`],
    ['all-zero trace id', `00-${'0'.repeat(32)}-${PARENT}-01`],
    ['all-zero span id', `00-${TRACE_ID}-${'0'.repeat(16)}-01`],
    ['version ff', `ff-${TRACE_ID}-${PARENT}-01`],
    ['not hex', `00-${TRACE_ID.slice(0, 31)}g-${PARENT}-01`],
    ['wrong separators', `00_${TRACE_ID}_${PARENT}_01`],
    ['short trace id', `00-${TRACE_ID.slice(1)}-${PARENT}0-01`],
    ['leading space', ` ${VALID.slice(1)}`],
    ['two headers', [VALID, VALID]],
    ['a later version with junk after the flags', `01-${TRACE_ID}-${PARENT}-01x`],
  ];
  for (const [what, value] of invalid) {
    const ctx = ensureTraceContext({ traceparent: value });
    assert.equal(ctx.created, true, what);
    assert.notEqual(ctx.traceId, TRACE_ID, what);
    assert.equal(ctx.parentSpanId, undefined, what);
    assert.match(ctx.traceparent, TRACEPARENT_SHAPE, what);
  }
});

test('a later version is parsed by its first 55 characters and sent on as version 00', () => {
  for (const value of [`cc-${TRACE_ID}-${PARENT}-01`, `cc-${TRACE_ID}-${PARENT}-01-what-the-future-will-be-like`]) {
    const ctx = ensureTraceContext({ traceparent: value });
    assert.equal(ctx.created, false, value);
    assert.equal(ctx.traceId, TRACE_ID);
    assert.equal(ctx.traceparent, `00-${TRACE_ID}-${ctx.spanId}-01`);
  }
  assert.equal(parseTraceparent(VALID)?.flags, '01');
  assert.equal(parseTraceparent(undefined), undefined);
});

test('tracestate and the headers are left untouched', () => {
  const headers = { traceparent: VALID, tracestate: 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7' };
  const before = { ...headers };
  ensureTraceContext(headers);
  assert.deepEqual(headers, before);
  // A one-element array is a single header.
  assert.equal(ensureTraceContext({ traceparent: [VALID] }).traceId, TRACE_ID);
});

test('x-request-id is kept when valid, created otherwise', () => {
  const uuid = '4a1ab2c0-7a3e-4a5b-9c1d-2e3f4a5b6c7d';
  assert.deepEqual(ensureRequestId({ 'x-request-id': uuid }), { requestId: uuid, created: false });
  assert.deepEqual(ensureRequestId({ 'x-request-id': 'custom-id_42' }), { requestId: 'custom-id_42', created: false });
  const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
  for (const bad of [undefined, '', 'has space', 'x'.repeat(201), 'tab\there', 'é', ['a', 'b']]) {
    const r = ensureRequestId({ 'x-request-id': bad });
    assert.equal(r.created, true, String(bad));
    assert.match(r.requestId, UUID_V4);
  }
  assert.notEqual(ensureRequestId({}).requestId, ensureRequestId({}).requestId);
});

test('fast enough for the request path', () => {
  const headers = { traceparent: VALID };
  const n = 100_000;
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) ensureTraceContext(headers);
  const ns = Number(process.hrtime.bigint() - start) / n;
  // Generous bound (shared CI machines); typically well under 1 µs.
  assert.ok(ns < 20_000, `${ns} ns per call`);
});
