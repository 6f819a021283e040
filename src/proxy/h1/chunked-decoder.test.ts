import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChunkedDecoder, type ChunkedLimits } from './chunked-decoder';
import { H1ParseError } from './parse-error';
import { mulberry32 } from '../../policy/client/random';

interface Decoded {
  data: Buffer;
  trailers: string[];
  done: boolean;
  /** Bytes not consumed by the decoder, in order. */
  rest: Buffer;
  chunks: Buffer[];
}

/** Feeds `pieces` in order; once done, the unconsumed bytes of every later piece are collected as `rest`. */
function feed(pieces: Buffer[], limits?: Partial<ChunkedLimits>): Decoded {
  const dec = new ChunkedDecoder(limits);
  const chunks: Buffer[] = [];
  const rest: Buffer[] = [];
  for (const piece of pieces) {
    const used = dec.push(piece, (c) => chunks.push(c));
    assert.ok(used >= 0 && used <= piece.length);
    if (!dec.done) assert.equal(used, piece.length, 'everything is consumed before the end');
    rest.push(piece.subarray(used));
  }
  return { data: Buffer.concat(chunks), trailers: dec.trailers, done: dec.done, rest: Buffer.concat(rest), chunks };
}

function bytewise(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i++) out.push(buf.subarray(i, i + 1));
  return out;
}

function randomSplits(buf: Buffer, next: () => number, maxPiece: number): Buffer[] {
  const out: Buffer[] = [];
  let i = 0;
  while (i < buf.length) {
    const n = Math.min(buf.length - i, Math.floor(next() * maxPiece)); // 0-length pieces too
    out.push(buf.subarray(i, i + n));
    i += n;
  }
  return out;
}

/** Asserts the decoder throws H1ParseError(status) for `wire`, whole and fed byte by byte. */
function rejects(wire: string | Buffer, status: number, reason?: RegExp, limits?: Partial<ChunkedLimits>): void {
  const buf = typeof wire === 'string' ? Buffer.from(wire, 'latin1') : wire;
  for (const pieces of [[buf], bytewise(buf)]) {
    assert.throws(
      () => feed(pieces, limits),
      (err: unknown) => {
        assert.ok(err instanceof H1ParseError, `expected H1ParseError, got ${String(err)}`);
        assert.equal(err.status, status, `status for ${JSON.stringify(buf.toString('latin1'))}: ${err.reason}`);
        if (reason) assert.match(err.reason, reason);
        return true;
      },
      JSON.stringify(buf.toString('latin1')),
    );
  }
}

const NEXT = Buffer.from('GET /next HTTP/1.1\r\nHost: a\r\n\r\n');

test('a simple body with trailers, whole and byte by byte, leaves the pipelined request intact', () => {
  const wire = Buffer.concat([
    Buffer.from('5\r\nhello\r\n7;name=value;q="a;b\\"c"\r\n, world\r\nA \t;x\r\n0123456789\r\n0\r\nX-Sum: \t abc \r\nX-Other:\r\nX-Sum: 2\r\n\r\n'),
    NEXT,
  ]);
  for (const pieces of [[wire], bytewise(wire)]) {
    const r = feed(pieces);
    assert.equal(r.done, true);
    assert.equal(r.data.toString(), 'hello, world0123456789');
    assert.deepEqual(r.trailers, ['x-sum', 'abc', 'x-other', '', 'x-sum', '2']);
    assert.deepEqual(r.rest, NEXT);
  }
});

test('an empty body, upper/lower-case hex and leading zeros', () => {
  const r = feed([Buffer.from('0\r\n\r\n')]);
  assert.equal(r.done, true);
  assert.equal(r.data.length, 0);
  assert.deepEqual(r.trailers, []);
  assert.equal(feed([Buffer.from('000\r\n\r\n')]).done, true);
  const hex = feed([Buffer.from(`1a\r\n${'x'.repeat(26)}\r\n1A\r\n${'y'.repeat(26)}\r\n00010\r\n${'z'.repeat(16)}\r\n0\r\n\r\n`)]);
  assert.equal(hex.data.toString(), 'x'.repeat(26) + 'y'.repeat(26) + 'z'.repeat(16));
});

test('push returns the bytes up to the end of the body; later pushes consume nothing', () => {
  const dec = new ChunkedDecoder();
  const body = Buffer.from('3\r\nabc\r\n0\r\n\r\n');
  const buf = Buffer.concat([body, NEXT]);
  let got = '';
  assert.equal(dec.push(buf, (c) => (got += c.toString())), body.length);
  assert.equal(dec.done, true);
  assert.equal(got, 'abc');
  assert.equal(dec.push(NEXT, () => assert.fail('no data after done')), 0);
  // The end exactly at the end of a push.
  const dec2 = new ChunkedDecoder();
  assert.equal(dec2.push(body.subarray(0, 10), () => undefined), 10);
  assert.equal(dec2.done, false);
  assert.equal(dec2.push(body.subarray(10), () => undefined), body.length - 10);
  assert.equal(dec2.done, true);
});

test('body bytes are zero-copy views of the pushed buffers', () => {
  const buf = Buffer.from('4\r\nabcd\r\n0\r\n\r\n');
  const r = feed([buf]);
  assert.equal(r.chunks.length, 1);
  assert.equal(r.chunks[0].buffer, buf.buffer);
  assert.equal(r.chunks[0].byteOffset, buf.byteOffset + 3);
  // A chunk spread over pushes comes out in pieces, none of them empty.
  const split = feed([buf.subarray(0, 4), buf.subarray(4, 6), buf.subarray(6)]);
  assert.deepEqual(split.chunks.map((c) => c.toString()), ['a', 'bc', 'd']);
  assert.ok(feed(bytewise(buf)).chunks.every((c) => c.length === 1));
});

test('random bodies fed whole, byte by byte and in random splits decode identically (seeded)', () => {
  const next = mulberry32(0x5eed);
  for (let round = 0; round < 60; round++) {
    const parts: Buffer[] = [];
    const data: Buffer[] = [];
    const trailers: string[] = [];
    const nChunks = Math.floor(next() * 6);
    for (let c = 0; c < nChunks; c++) {
      const size = 1 + Math.floor(next() * (next() < 0.2 ? 3000 : 40));
      const payload = Buffer.alloc(size);
      for (let k = 0; k < size; k++) payload[k] = Math.floor(next() * 256); // includes CR, LF, "0\r\n\r\n"-like bytes
      let sizeText = size.toString(16);
      if (next() < 0.5) sizeText = sizeText.toUpperCase();
      if (next() < 0.2) sizeText = '00' + sizeText;
      const ext = next() < 0.3 ? ` ;a=b;c="x;\\"y"` : next() < 0.3 ? ';flag' : '';
      parts.push(Buffer.from(`${sizeText}${ext}\r\n`), payload, Buffer.from('\r\n'));
      data.push(payload);
    }
    parts.push(Buffer.from(next() < 0.3 ? '0;last\r\n' : '0\r\n'));
    const nTrailers = Math.floor(next() * 3);
    for (let t = 0; t < nTrailers; t++) {
      const value = `v${Math.floor(next() * 1e6)} x`;
      parts.push(Buffer.from(`X-Trailer-${t}:  ${value} \r\n`));
      trailers.push(`x-trailer-${t}`, value);
    }
    parts.push(Buffer.from('\r\n'));
    const wire = Buffer.concat([...parts, NEXT]);
    const expected = Buffer.concat(data);

    const variants = [[wire], bytewise(wire), randomSplits(wire, next, 7), randomSplits(wire, next, 64), randomSplits(wire, next, 5000)];
    for (const pieces of variants) {
      const r = feed(pieces);
      assert.equal(r.done, true, `round ${round}`);
      assert.ok(r.data.equals(expected), `round ${round}: body bytes`);
      assert.deepEqual(r.trailers, trailers, `round ${round}: trailers`);
      assert.ok(r.rest.equals(NEXT), `round ${round}: the next message is left intact`);
    }
  }
});

test('bad chunk sizes are 400', () => {
  rejects('zz\r\nabc\r\n0\r\n\r\n', 400);
  rejects('\r\n', 400);
  rejects(' 5\r\nhello\r\n0\r\n\r\n', 400);
  rejects('-5\r\nhello\r\n0\r\n\r\n', 400);
  rejects('+5\r\nhello\r\n0\r\n\r\n', 400);
  rejects('0x5\r\nhello\r\n0\r\n\r\n', 400);
  rejects('5 5\r\nhello\r\n0\r\n\r\n', 400);
  rejects('5g\r\nhello\r\n0\r\n\r\n', 400);
  rejects(';ext\r\n', 400);
});

test('chunk sizes beyond 2^53-1 or with more than 15 hex digits are 400', () => {
  rejects('20000000000000\r\n', 400, /too large/); // 2^53
  rejects('ffffffffffffffff\r\n', 400);
  rejects('0000000000000001\r\n', 400, /digits/); // 16 digits, even with a small value
  // 2^53-1 and 15 digits are accepted (the data is not there yet).
  for (const size of ['1fffffffffffff', '000000000000005']) {
    const dec = new ChunkedDecoder();
    assert.equal(dec.push(Buffer.from(`${size}\r\nab`), () => undefined), size.length + 4);
    assert.equal(dec.done, false);
  }
});

test('missing CRLF after chunk data is 400', () => {
  rejects('3\r\nabcd\r\n0\r\n\r\n', 400, /missing CRLF/);
  rejects('3\r\nabc\n0\r\n\r\n', 400, /missing CRLF/);
  rejects('3\r\nabc\r0\r\n\r\n', 400, /missing CRLF/);
  rejects('3\r\nabc0\r\n\r\n', 400, /missing CRLF/);
  // Two bytes in place of the CRLF must not be taken for it.
  rejects('3\r\nabcd\n0\r\n\r\n', 400, /missing CRLF/);
  rejects('3\r\nabc\rX0\r\n\r\n', 400, /missing CRLF/);
});

test('bare LF or bare CR in framing lines is 400', () => {
  rejects('3\nabc\r\n0\r\n\r\n', 400);
  rejects('3\rabc\r\n0\r\n\r\n', 400);
  rejects('3;x\nabc\r\n0\r\n\r\n', 400);
  rejects('3 \nabc\r\n0\r\n\r\n', 400);
  rejects('0\n\r\n', 400);
  rejects('0\r\n\n', 400);
  rejects('0\r\n\r\r\n', 400);
  rejects('0\r\nX: a\nY: b\r\n\r\n', 400);
  rejects('0\r\nX: a\rY: b\r\n\r\n', 400);
  // A CR followed by any other byte is not a line end.
  rejects('3\rXabc\r\n0\r\n\r\n', 400);
  rejects('3;e\rXabc\r\n0\r\n\r\n', 400);
  rejects('0\r\nX: a\rX\r\n\r\n', 400);
});

test('chunk extensions: CTLs other than HTAB are 400', () => {
  assert.equal(feed([Buffer.from('1;a=b\t;c="\x80d"\r\nx\r\n0\r\n\r\n')]).data.toString(), 'x');
  rejects('1;a\x00\r\nx\r\n0\r\n\r\n', 400);
  rejects('1;a\x1b\r\nx\r\n0\r\n\r\n', 400);
  rejects('1;a\x7f\r\nx\r\n0\r\n\r\n', 400);
  rejects('1 \x0b;a\r\nx\r\n0\r\n\r\n', 400);
});

test('the chunk-size line is limited (400)', () => {
  const line = (n: number): string => `1;${'e'.repeat(n - 2)}\r\nx\r\n0\r\n\r\n`;
  assert.equal(feed([Buffer.from(line(4096))]).done, true);
  rejects(line(4097), 400, /too long/);
  assert.equal(feed(bytewise(Buffer.from(line(50))), { maxLineBytes: 50 }).done, true);
  rejects(line(51), 400, /too long/, { maxLineBytes: 50 });
  rejects(`${'0'.repeat(15)}${' '.repeat(40)}\r\n\r\n`, 400, /too long/, { maxLineBytes: 50 });
});

test('the trailer section is limited (431)', () => {
  const body = (valueLen: number): string => `0\r\nx: ${'v'.repeat(valueLen)}\r\n\r\n`;
  // "x: " + value + CRLF, then the final CRLF.
  assert.equal(feed([Buffer.from(body(95))], { maxTrailerBytes: 102 }).done, true);
  rejects(body(96), 431, undefined, { maxTrailerBytes: 102 });
  rejects(`0\r\n${'x-long: abcdefgh\r\n'.repeat(1000)}\r\n`, 431);
  // An endless trailer line is refused as soon as it is too long, not at its (missing) end.
  const dec = new ChunkedDecoder({ maxTrailerBytes: 100 });
  dec.push(Buffer.from('0\r\nx: '), () => undefined);
  assert.throws(() => {
    for (let i = 0; i < 100; i++) dec.push(Buffer.from('v'), () => undefined);
  }, (err: unknown) => err instanceof H1ParseError && err.status === 431);
});

test('trailer fields follow the header field rules', () => {
  rejects('0\r\nX: a\r\n folded\r\n\r\n', 400, /obs-fold/);
  rejects('0\r\nX : a\r\n\r\n', 400, /whitespace/);
  rejects('0\r\nX: a\x00b\r\n\r\n', 400);
  rejects('0\r\nno colon\r\n\r\n', 400);
  rejects('0\r\n: x\r\n\r\n', 400);
});

test('a failed decoder stays failed', () => {
  const dec = new ChunkedDecoder();
  assert.throws(() => dec.push(Buffer.from('x'), () => undefined), H1ParseError);
  assert.throws(() => dec.push(Buffer.from('0\r\n\r\n'), () => undefined), H1ParseError);
  assert.equal(dec.done, false);
});
