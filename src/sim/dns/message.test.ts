import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeQuery, encodeResponse, parseQuery, parseResponse, RCODE_NOERROR, RCODE_NXDOMAIN, TYPE_A, TYPE_AAAA, TYPE_PTR, UDP_MAX_BYTES } from './message';

test('a query reads back as its id, flags and question', () => {
  const q = parseQuery(encodeQuery(0xbeef, 'B.demo.svc.cluster.local', TYPE_AAAA));
  assert.deepEqual(q, { id: 0xbeef, opcode: 0, recursionDesired: true, question: { name: 'B.demo.svc.cluster.local', type: TYPE_AAAA, class: 1 } });
});

test('a response is never taken for a query, and a short or broken message has no question', () => {
  const query = parseQuery(encodeQuery(1, 'a.b', TYPE_A))!;
  assert.equal(parseQuery(encodeResponse(query, { rcode: 0, authoritative: true, answers: [], ttl: 5 })), undefined);
  assert.equal(parseQuery(Buffer.alloc(5)), undefined);
  const broken = encodeQuery(2, 'abc.def', TYPE_A);
  broken[12] = 60; // a label longer than the message
  assert.equal(parseQuery(broken)!.question, undefined);
  const loop = Buffer.concat([encodeQuery(3, 'x', TYPE_A).subarray(0, 12), Buffer.from([0xc0, 12, 0, 1, 0, 1])]);
  assert.equal(parseQuery(loop)!.question, undefined, 'a pointer to itself is refused, not followed forever');
});

test('A, AAAA and PTR answers encode as a resolver reads them', () => {
  const query = parseQuery(encodeQuery(7, 'b.demo.svc.cluster.local', TYPE_A))!;
  const wire = encodeResponse(query, {
    rcode: RCODE_NOERROR,
    authoritative: true,
    ttl: 5,
    answers: [
      { type: TYPE_A, address: '10.96.0.20' },
      { type: TYPE_AAAA, address: 'fd00:96::20' },
      { type: TYPE_PTR, target: 'b.demo.svc.cluster.local' },
    ],
  });
  // Header: id 7, QR|AA|RD, one question, three answers.
  assert.equal(wire.readUInt16BE(0), 7);
  assert.equal(wire.readUInt16BE(2), 0x8000 | 0x0400 | 0x0100);
  assert.deepEqual([wire.readUInt16BE(4), wire.readUInt16BE(6)], [1, 3]);
  const r = parseResponse(wire);
  assert.equal(r.rcode, RCODE_NOERROR);
  assert.equal(r.authoritative, true);
  assert.deepEqual(r.answers, [
    { type: TYPE_A, address: '10.96.0.20' },
    { type: TYPE_AAAA, address: 'fd00:96::20' },
    { type: TYPE_PTR, target: 'b.demo.svc.cluster.local' },
  ]);
  // The first answer's name is a pointer to the question, then type A, class IN, TTL 5, 4 bytes.
  const first = 12 + Buffer.byteLength('b.demo.svc.cluster.local') + 2 + 4;
  assert.deepEqual([...wire.subarray(first, first + 16)], [0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 96, 0, 20]);
});

test('over UDP, answers beyond 512 bytes are left out and TC says so', () => {
  const query = parseQuery(encodeQuery(9, 'headless.demo.svc.cluster.local', TYPE_A))!;
  const answers = Array.from({ length: 60 }, (_, i) => ({ type: TYPE_A, address: `10.244.1.${i + 2}` }) as const);
  const wire = encodeResponse(query, { rcode: RCODE_NXDOMAIN, authoritative: true, answers, ttl: 5 }, UDP_MAX_BYTES);
  assert.ok(wire.length <= UDP_MAX_BYTES);
  const r = parseResponse(wire);
  assert.equal(r.truncated, true);
  assert.ok(r.answers.length > 0 && r.answers.length < 60);
  assert.equal(parseResponse(encodeResponse(query, { rcode: 0, authoritative: true, answers, ttl: 5 })).answers.length, 60, 'over TCP they all fit');
});
