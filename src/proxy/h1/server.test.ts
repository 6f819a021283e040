import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import type { Logger } from '../../log';
import type { BodySource, DownstreamExchange } from '../http/exchange';
import type { HeaderRecord } from '../http/headers';
import { ChunkedDecoder } from './chunked-decoder';
import { findHeadEnd, parseResponseHead } from './head-parser';
import { H1Server } from './server';
import type { H1Handlers, H1Limits, PendingUpgrade } from './server-connection';
import { readBody } from './testing';

/**
 * H1Server / H1ServerConnection over real loopback sockets: a raw client writes exact bytes
 * (malformed ones too) and reads the raw response bytes.
 */

const log = { debug() {}, info() {}, warn() {}, error() {}, child() { return this; } } as unknown as Logger;

const LIMITS: H1Limits = { maxHeaderSize: 16 * 1024, headersTimeoutMs: 2000, requestTimeoutMs: 5000, keepAliveTimeoutMs: 5000 };
const T = { timeout: 8000 };

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `pred` until true; fails with `what` (and `detail()`) after `ms`. */
async function until(pred: () => boolean, what: string, ms = 2000, detail?: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}${detail ? `: ${detail()}` : ''}`);
    await sleep(5);
  }
}

interface Upgrade { pending: PendingUpgrade; socket: net.Socket }

interface Harness {
  h1: H1Server;
  port: number;
  /** Every exchange handed to the request handler, in order. */
  exchanges: DownstreamExchange[];
  upgrades: Upgrade[];
  /** Server-side sockets accepted. */
  accepted: net.Socket[];
  /** The socket argument of every request handler call. */
  handlerSockets: net.Socket[];
}

/**
 * An H1Server fed by a loopback net server. `request` answers each exchange (default: 200,
 * empty). Everything is closed after the test.
 */
async function startServer(
  t: TestContext,
  handlers: { request?: (ex: DownstreamExchange) => void; upgrade?: (u: Upgrade) => void } = {},
  limits: Partial<H1Limits> = {},
): Promise<Harness> {
  const exchanges: DownstreamExchange[] = [];
  const upgrades: Upgrade[] = [];
  const accepted: net.Socket[] = [];
  const handlerSockets: net.Socket[] = [];
  const h1Handlers: H1Handlers = {
    request(ex, socket) {
      exchanges.push(ex);
      handlerSockets.push(socket);
      if (handlers.request) handlers.request(ex);
      else {
        ex.writeHead(200, {});
        ex.end();
      }
    },
    upgrade(pending, socket) {
      const u = { pending, socket };
      upgrades.push(u);
      if (handlers.upgrade) handlers.upgrade(u);
      else pending.refuse(503, 'no upstream in this test');
    },
  };
  const h1 = new H1Server(h1Handlers, { ...LIMITS, ...limits }, log);
  const server = net.createServer((s) => {
    accepted.push(s);
    h1.serve(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    h1.close();
    for (const s of accepted) s.destroy();
    server.close();
  });
  const port = (server.address() as net.AddressInfo).port;
  return { h1, port, exchanges, upgrades, accepted, handlerSockets };
}

/**
 * A raw upstream for upgrades on loopback: `onSocket` gets each connection with the bytes
 * it has received so far (`received()`, latin1). Closed after the test.
 */
async function startUpstream(t: TestContext, onSocket: (socket: net.Socket, received: () => string) => void): Promise<{ port: number; connections: Array<() => string> }> {
  const connections: Array<() => string> = [];
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    let data = '';
    socket.on('data', (d: Buffer) => {
      data += d.toString('latin1');
    });
    socket.on('error', () => undefined);
    const received = () => data;
    connections.push(received);
    onSocket(socket, received);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { port: (server.address() as net.AddressInfo).port, connections };
}

/** The upgrade handler of a proxy: connects to `port` and hands the socket over. */
function connectTo(port: number): (u: Upgrade) => void {
  return (u) => {
    const up = net.connect(port, '127.0.0.1');
    up.on('error', () => undefined);
    up.once('connect', () => u.pending.connect(up));
  };
}

/** A raw client: writes bytes as given, keeps everything it receives. */
class RawClient {
  data = Buffer.alloc(0);
  /** Bytes of `data` already taken by readResponse. */
  pos = 0;
  ended = false;
  closed = false;
  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.data = Buffer.concat([this.data, d]);
    });
    socket.on('end', () => {
      this.ended = true;
    });
    socket.on('close', () => {
      this.closed = true;
    });
    socket.on('error', () => undefined);
  }

  static async connect(t: TestContext, port: number): Promise<RawClient> {
    const socket = net.connect(port, '127.0.0.1');
    t.after(() => socket.destroy());
    await once(socket, 'connect');
    return new RawClient(socket);
  }

  write(bytes: string | Buffer): void {
    this.socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  }

  text(): string {
    return this.data.toString('latin1');
  }

  pending(): Buffer {
    return this.data.subarray(this.pos);
  }

  async waitText(s: string, ms = 2000): Promise<void> {
    await until(() => this.text().includes(s), JSON.stringify(s), ms, () => JSON.stringify(this.text()));
  }

  async waitClosed(ms = 2000): Promise<void> {
    await until(() => this.closed, 'the server to close the connection', ms, () => JSON.stringify(this.text()));
  }
}

interface Resp {
  /** The whole response as received (latin1). */
  raw: string;
  status: number;
  headers: string[];
  body: string;
  trailers: string[];
}

/**
 * Reads the next response from the client's bytes with the (unit-tested, strict) parsers:
 * content-length, chunked (decoded), or close-delimited. `noBody` for a response to HEAD.
 */
async function readResponse(c: RawClient, opts: { noBody?: boolean } = {}): Promise<Resp> {
  await until(() => findHeadEnd(c.pending(), 0) >= 0, 'a response head', 2000, () => JSON.stringify(c.pending().toString('latin1')));
  const end = findHeadEnd(c.pending(), 0);
  const head = parseResponseHead(c.pending(), end);
  let consumed = end;
  let body: Buffer = Buffer.alloc(0);
  let trailers: string[] = [];
  if (opts.noBody || head.status === 204 || head.status === 304 || head.status < 200) {
    // nothing
  } else if (head.chunked) {
    const decode = () => {
      const d = new ChunkedDecoder();
      const parts: Buffer[] = [];
      const used = d.push(c.pending().subarray(end), (x) => parts.push(Buffer.from(x)));
      return { done: d.done, used, data: Buffer.concat(parts), trailers: d.trailers };
    };
    await until(() => decode().done, 'the end of a chunked body', 2000, () => JSON.stringify(c.pending().toString('latin1')));
    const d = decode();
    consumed = end + d.used;
    body = d.data;
    trailers = d.trailers;
  } else if (head.contentLength !== undefined) {
    const n = head.contentLength;
    await until(() => c.pending().length >= end + n, `a body of ${n} bytes`);
    consumed = end + n;
    body = c.pending().subarray(end, consumed);
  } else {
    await c.waitClosed();
    consumed = c.pending().length;
    body = c.pending().subarray(end);
  }
  const raw = c.pending().subarray(0, consumed).toString('latin1');
  c.pos += consumed;
  return { raw, status: head.status, headers: head.headers, body: body.toString('latin1'), trailers };
}


function isSource(b: unknown): b is BodySource {
  return b !== undefined && !Buffer.isBuffer(b) && typeof (b as BodySource).start === 'function';
}

/** Answers with `body` framed by content-length. */
function reply(ex: DownstreamExchange, status: number, body: string, headers: HeaderRecord = {}): void {
  ex.writeHead(status, { ...headers, 'content-length': String(Buffer.byteLength(body)) });
  if (body.length > 0) ex.write(Buffer.from(body));
  ex.end();
}

const GET = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: svc.local\r\n${extra}\r\n`;

// ---------------------------------------------------------------------------------------------

test('keep-alive: a GET then a POST with a content-length body on one connection, answered in order', T, async (t) => {
  const s = await startServer(t, {
    request(ex) {
      if (ex.method === 'GET') reply(ex, 200, 'first', { 'x-path': ex.path });
      else reply(ex, 201, `got ${(ex.body as Buffer).toString()}`, { 'x-path': ex.path });
    },
  });
  const c = await RawClient.connect(t, s.port);
  c.write(GET('/one', 'X-Custom: a\r\n'));
  const r1 = await readResponse(c);
  assert.equal(r1.raw, 'HTTP/1.1 200 OK\r\nx-path: /one\r\ncontent-length: 5\r\n\r\nfirst');

  // The POST's body arrives in a second write, after the head.
  c.write('POST /two?q=1 HTTP/1.1\r\nHost: svc.local\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello');
  await sleep(20);
  assert.equal(s.exchanges.length, 1, 'a small body is read whole before the request is dispatched');
  c.write(' world');
  const r2 = await readResponse(c);
  assert.equal(r2.raw, 'HTTP/1.1 201 Created\r\nx-path: /two?q=1\r\ncontent-length: 15\r\n\r\ngot hello world');

  assert.equal(s.accepted.length, 1, 'one TCP connection');
  assert.equal(c.closed || c.ended, false, 'the connection stays open');
  assert.equal(s.exchanges.length, 2);
  const [get, post] = s.exchanges as [DownstreamExchange, DownstreamExchange];
  assert.equal(get.method, 'GET');
  assert.equal(get.path, '/one');
  assert.equal(get.authority, 'svc.local');
  assert.equal(get.protocol, 'http1');
  assert.equal(get.body, undefined);
  assert.equal(get.contentLength, undefined);
  assert.deepEqual(get.headers, { 'x-custom': 'a' }, 'host is the authority, not a header');
  assert.equal(post.method, 'POST');
  assert.equal(post.path, '/two?q=1');
  assert.ok(Buffer.isBuffer(post.body), 'a content-length body arrives as one Buffer');
  assert.equal((post.body as Buffer).toString(), 'hello world');
  assert.equal(post.contentLength, 11);
  assert.equal(post.bodyBytesRead, 11);
  assert.deepEqual(post.headers, { 'content-type': 'text/plain', 'content-length': '11' });
  assert.equal(s.handlerSockets[0], s.accepted[0], 'the handler gets the connection socket');
  // Both ended: neither reports the connection closed.
  assert.equal(get.closed, false);
  assert.equal(post.headersSent, true);
});

test('a chunked request body streams to the handler with exact bytes and trailers; the connection is reused', T, async (t) => {
  const got: Array<Promise<{ data: string; trailers: HeaderRecord | undefined }>> = [];
  const s = await startServer(t, {
    request(ex) {
      if (ex.method === 'GET') return reply(ex, 200, 'next');
      assert.ok(isSource(ex.body));
      const p = readBody(ex.body);
      got.push(p);
      void p.then((b) => reply(ex, 200, `${b.data.length}`));
    },
  });
  const c = await RawClient.connect(t, s.port);
  c.write('POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\n\r\n5\r\nhel');
  await until(() => s.exchanges.length === 1, 'the request to be dispatched before its body ends');
  await sleep(10);
  c.write('lo\r\n6;ext=1\r\n world\r\n');
  await sleep(10);
  c.write('0\r\nX-Checksum: abc\r\n\r\n');
  const r1 = await readResponse(c);
  assert.equal(r1.raw, 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n11');
  const b = await got[0]!;
  assert.equal(b.data, 'hello world');
  assert.deepEqual(b.trailers, { 'x-checksum': 'abc' });
  const ex = s.exchanges[0]!;
  assert.equal(ex.contentLength, undefined);
  assert.equal(ex.bodyBytesRead, 11);
  assert.equal(ex.headers['transfer-encoding'], undefined, 'the framing is hop-by-hop');

  c.write(GET('/after'));
  const r2 = await readResponse(c);
  assert.equal(r2.raw, 'HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nnext');
  assert.equal(s.accepted.length, 1);
});

test('the request after a chunked body, in the same packet as its last chunk, is served when the handler answers from the body end', T, async (t) => {
  const s = await startServer(t, {
    request(ex) {
      if (ex.method === 'GET') return reply(ex, 200, `get ${ex.path}`);
      assert.ok(isSource(ex.body));
      const parts: Buffer[] = [];
      ex.body.start({
        write: (chunk) => parts.push(Buffer.from(chunk)) > 0,
        // Answers synchronously from the end of the body.
        end: () => reply(ex, 200, Buffer.concat(parts).toString()),
        fail: () => ex.destroy(),
      });
    },
  });
  const c = await RawClient.connect(t, s.port);
  c.write('POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n');
  await until(() => s.exchanges.length === 1, 'the POST to be dispatched');
  await sleep(20);
  c.write(`0\r\n\r\n${GET('/pipelined')}`);
  const r1 = await readResponse(c);
  assert.equal(r1.raw, 'HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc');
  const r2 = await readResponse(c);
  assert.equal(r2.raw, 'HTTP/1.1 200 OK\r\ncontent-length: 14\r\n\r\nget /pipelined');
});

test('a chunked body of many small chunks read after it arrived does not leave the connection paused', T, async (t) => {
  const s = await startServer(t, {
    request(ex) {
      if (ex.method === 'GET') return reply(ex, 200, 'next');
      assert.ok(isSource(ex.body));
      const body = ex.body;
      // The handler starts the body a little later (as a pipeline that first picks a route).
      setTimeout(() => void readBody(body).then((b) => reply(ex, 200, b.data)), 20);
    },
  });
  const c = await RawClient.connect(t, s.port);
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  const chunks = [...letters].map((ch) => `1\r\n${ch}\r\n`).join('');
  c.write(`POST /many HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n${chunks}0\r\n\r\n`);
  const r1 = await readResponse(c);
  assert.equal(r1.body, letters);
  c.write(GET('/after'));
  const r2 = await readResponse(c);
  assert.equal(r2.raw, 'HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nnext');
});

test('a content-length body larger than the whole-body limit streams as a BodySource; the connection is reused', T, async (t) => {
  const size = 200 * 1024;
  const payload = Buffer.alloc(size);
  for (let i = 0; i < size; i++) payload[i] = (i * 7 + 3) & 0xff;
  let received: Buffer | undefined;
  const s = await startServer(t, {
    request(ex) {
      if (ex.method === 'GET') return reply(ex, 200, 'next');
      assert.ok(isSource(ex.body));
      const parts: Buffer[] = [];
      ex.body.start({
        write: (chunk) => parts.push(Buffer.from(chunk)) > 0,
        end: () => {
          received = Buffer.concat(parts);
          reply(ex, 200, String(received.length));
        },
        fail: () => ex.destroy(),
      });
    },
  });
  const c = await RawClient.connect(t, s.port);
  c.write(`PUT /big HTTP/1.1\r\nHost: a\r\nContent-Length: ${size}\r\n\r\n`);
  c.write(payload.subarray(0, 1000));
  await sleep(10);
  c.write(Buffer.concat([payload.subarray(1000), Buffer.from(GET('/after'), 'latin1')]));
  const r1 = await readResponse(c);
  assert.equal(r1.body, String(size));
  assert.ok(received && received.equals(payload), 'the body arrives byte for byte');
  assert.equal(s.exchanges[0]!.contentLength, size);
  const r2 = await readResponse(c);
  assert.equal(r2.raw, 'HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nnext');
});

test('pipelining: requests sent in one write are dispatched one at a time and answered in order', T, async (t) => {
  const order: string[] = [];
  const s = await startServer(t, {
    request(ex) {
      order.push(`start ${ex.path}`);
      // The first answers late, the others at once: the order must still hold.
      const delay = ex.path === '/a' ? 50 : 0;
      const answer = () => {
        order.push(`end ${ex.path}`);
        reply(ex, 200, `body of ${ex.path}`);
      };
      if (delay) setTimeout(answer, delay);
      else answer();
    },
  });
  const c = await RawClient.connect(t, s.port);
  c.write(GET('/a') + 'POST /b HTTP/1.1\r\nHost: svc.local\r\nContent-Length: 3\r\n\r\nxyz' + GET('/c'));
  const r1 = await readResponse(c);
  const r2 = await readResponse(c);
  const r3 = await readResponse(c);
  assert.equal(r1.raw, 'HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nbody of /a');
  assert.equal(r2.raw, 'HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nbody of /b');
  assert.equal(r3.raw, 'HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nbody of /c');
  assert.deepEqual(order, ['start /a', 'end /a', 'start /b', 'end /b', 'start /c', 'end /c']);
  assert.equal((s.exchanges[1]!.body as Buffer).toString(), 'xyz');
  assert.equal(c.pending().length, 0, 'nothing else was written');
  assert.equal(s.accepted.length, 1);
});

test('pipelined requests with other methods, empty lines between them and an absolute-form target are each parsed and dispatched', T, async (t) => {
  const s = await startServer(t, {
    request(ex) {
      reply(ex, 200, `${ex.method} ${ex.authority}${ex.path}`);
    },
  });
  const c = await RawClient.connect(t, s.port);
  c.write(
    '\r\n\r\nPURGE /cache/a HTTP/1.1\r\nHost: svc.local\r\n\r\n' +
      'REPORT /dav HTTP/1.1\r\nHost: svc.local\r\n\r\n\r\n\r\n' +
      'QUERY /search HTTP/1.1\r\nHost: svc.local\r\nContent-Length: 3\r\n\r\nq=1' +
      '\n\nget /lower HTTP/1.1\r\nHost: svc.local\r\n\r\n' +
      'GET http://other.test/admin?x=1 HTTP/1.1\r\nHost: svc.local\r\n\r\n',
  );
  const bodies: string[] = [];
  for (let i = 0; i < 5; i++) bodies.push((await readResponse(c)).body);
  assert.deepEqual(bodies, [
    'PURGE svc.local/cache/a',
    'REPORT svc.local/dav',
    'QUERY svc.local/search',
    'get svc.local/lower',
    'GET other.test/admin?x=1',
  ]);
  assert.equal((s.exchanges[2]!.body as Buffer).toString(), 'q=1');
  assert.equal(c.closed, false);
  assert.equal(s.accepted.length, 1);
});

test('request smuggling: Transfer-Encoding "chunked" followed by HTAB is answered 400 and closed', T, async (t) => {
  const s = await startServer(t);
  const c = await RawClient.connect(t, s.port);
  c.write('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n' + GET('/smuggled'));
  await c.waitClosed();
  assert.equal(c.text(), 'HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
  assert.equal(s.exchanges.length, 0);
});

test('request smuggling: Content-Length with Transfer-Encoding is answered 400 and closed, never dispatched', T, async (t) => {
  const s = await startServer(t);
  const c = await RawClient.connect(t, s.port);
  c.write('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' + GET('/smuggled'));
  await c.waitClosed();
  assert.equal(c.text(), 'HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
  assert.equal(s.exchanges.length, 0, 'the handler is never called');
});

test('request smuggling: a duplicate Content-Length is answered 400 and closed', T, async (t) => {
  const s = await startServer(t);
  for (const cl of ['Content-Length: 5\r\nContent-Length: 5\r\n', 'Content-Length: 5\r\nContent-Length: 6\r\n', 'Content-Length: 5, 5\r\n']) {
    const c = await RawClient.connect(t, s.port);
    c.write(`POST / HTTP/1.1\r\nHost: a\r\n${cl}\r\nhello`);
    await c.waitClosed();
    assert.equal(c.text(), 'HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n', cl);
  }
  assert.equal(s.exchanges.length, 0);
  // A malformed request after a good one on the same connection: the good one is answered, then 400.
  const c = await RawClient.connect(t, s.port);
  c.write(GET('/ok') + 'GET /bad HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n');
  await c.waitClosed();
  assert.equal(c.text(), 'HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\nHTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
  assert.equal(s.exchanges.length, 1);
  assert.equal(s.exchanges[0]!.path, '/ok');
});

test('a request head larger than maxHeaderSize is answered 431', T, async (t) => {
  const s = await startServer(t, {}, { maxHeaderSize: 1024 });
  // Incomplete and already too large: refused without waiting for the end of the head.
  const c1 = await RawClient.connect(t, s.port);
  c1.write(`GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'x'.repeat(1100)}\r\n`);
  await c1.waitClosed();
  assert.equal(c1.text(), 'HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
  // Complete in one write.
  const c2 = await RawClient.connect(t, s.port);
  c2.write(GET('/', `X-Big: ${'y'.repeat(1100)}\r\n`));
  await c2.waitClosed();
  assert.equal(c2.text(), 'HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
  // Just under the limit is served.
  const c3 = await RawClient.connect(t, s.port);
  const head = GET('/', 'X-Fill: ');
  c3.write(GET('/', `X-Fill: ${'z'.repeat(1024 - head.length - 2)}\r\n`));
  const r = await readResponse(c3);
  assert.equal(r.status, 200);
  assert.equal(s.exchanges.length, 1);
});

test('slowloris: an incomplete head is answered 408 and closed after headersTimeoutMs', T, async (t) => {
  const s = await startServer(t, {}, { headersTimeoutMs: 300 });
  const c = await RawClient.connect(t, s.port);
  const started = performance.now();
  c.write('GET / HTTP/1.1\r\nHost: a\r\n');
  // Trickling header lines does not extend the deadline.
  const trickle = setInterval(() => c.write('X-A: b\r\n'), 50);
  t.after(() => clearInterval(trickle));
  await c.waitClosed(2000);
  clearInterval(trickle);
  const elapsed = performance.now() - started;
  assert.equal(c.text(), 'HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
  assert.ok(elapsed >= 290, `not before the timeout (${elapsed.toFixed(0)} ms)`);
  // headersTimeoutMs + the check interval (100 ms), plus scheduling slack.
  assert.ok(elapsed < 300 + 100 + 250, `closed in ${elapsed.toFixed(0)} ms`);
  assert.equal(s.exchanges.length, 0);
});

test('a response without content-length: chunked for HTTP/1.1, close-delimited for HTTP/1.0', T, async (t) => {
  const s = await startServer(t, {
    request(ex) {
      if (ex.path === '/empty') {
        ex.writeHead(200, {});
        ex.end();
        return;
      }
      ex.writeHead(200, { 'content-type': 'text/plain' });
      ex.write(Buffer.from('hello'));
      setTimeout(() => {
        ex.write(Buffer.from(' world'));
        ex.write(Buffer.alloc(0));
        ex.end(ex.path === '/trailers' ? { 'x-sum': '42' } : undefined);
      }, 10);
    },
  });
  const c = await RawClient.connect(t, s.port);
  c.write(GET('/stream'));
  const r1 = await readResponse(c);
  assert.equal(r1.raw, 'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n');
  assert.equal(r1.body, 'hello world');
  c.write(GET('/trailers'));
  const r2 = await readResponse(c);
  assert.equal(r2.body, 'hello world');
  assert.deepEqual(r2.trailers, ['x-sum', '42']);
  assert.ok(r2.raw.endsWith('0\r\nx-sum: 42\r\n\r\n'));
  c.write(GET('/empty'));
  const r3 = await readResponse(c);
  assert.equal(r3.raw, 'HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n', 'end() without a body says so');
  assert.equal(c.closed, false, 'HTTP/1.1 keeps the connection');

  const c10 = await RawClient.connect(t, s.port);
  c10.write('GET /stream HTTP/1.0\r\n\r\n');
  await c10.waitClosed();
  assert.equal(c10.text(), 'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nhello world');

  // HTTP/1.0 keep-alive with a known length stays open and says so.
  const k = await RawClient.connect(t, s.port);
  k.write('GET /empty HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
  const r4 = await readResponse(k);
  assert.equal(r4.raw, 'HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: keep-alive\r\n\r\n');
  await sleep(30);
  assert.equal(k.closed, false);
});

const WS_HEAD = 'GET /chat HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n';
const SWITCHING = 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n';

test('a WebSocket upgrade: the head goes alone; a frame sent early follows the 101, then bytes flow both ways', T, async (t) => {
  const up = await startUpstream(t, (socket, received) => {
    const answer = setInterval(() => {
      if (!received().includes('\r\n\r\n')) return;
      clearInterval(answer);
      // Some time for bytes after the head to arrive (they must not), then switch and echo.
      setTimeout(() => {
        socket.write(SWITCHING);
        socket.on('data', (d: Buffer) => socket.write(d));
        const early = received().slice(received().indexOf('\r\n\r\n') + 4);
        if (early) socket.write(`early:${early}`);
      }, 40);
    }, 5);
  });
  const s = await startServer(t, { upgrade: connectTo(up.port) });
  const frame = Buffer.from([0x81, 0x05, 0x68, 0x65, 0x6c, 0x6c, 0x6f]);
  const c = await RawClient.connect(t, s.port);
  c.write(Buffer.concat([Buffer.from(WS_HEAD, 'latin1'), frame]));
  await until(() => c.data.length >= SWITCHING.length + frame.length, 'the 101 and the echoed frame', 2000, () => JSON.stringify(c.text()));
  assert.equal(c.text(), SWITCHING + frame.toString('latin1'), 'the early frame reached the upstream after its 101, not with the head');
  assert.equal(up.connections.length, 1);
  assert.equal(up.connections[0]!(), WS_HEAD + frame.toString('latin1'));
  assert.equal(s.upgrades.length, 1);
  const u = s.upgrades[0]!;
  assert.equal(u.pending.rawHead.toString('latin1'), WS_HEAD);
  assert.equal(u.pending.head.upgrade, true);
  assert.equal(u.pending.head.path, '/chat');
  assert.equal(u.socket, s.accepted[0]);
  // Later bytes are not parsed as HTTP (this would be a 400 otherwise).
  c.write('not http\r\n\r\n');
  await c.waitText('not http\r\n\r\n');
  assert.equal(c.text(), `${SWITCHING}${frame.toString('latin1')}not http\r\n\r\n`);
  assert.equal(s.h1.size, 0, 'the connection is no longer the server\'s');
  assert.equal(s.exchanges.length, 0, 'the request handler is not called');
});

test('CONNECT: the tunnel opens on the upstream\'s 2xx, with the bytes the client sent early', T, async (t) => {
  const connectHead = 'CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\n';
  const up = await startUpstream(t, (socket, received) => {
    const answer = setInterval(() => {
      if (!received().includes('\r\n\r\n')) return;
      clearInterval(answer);
      setTimeout(() => {
        assert.equal(received(), connectHead, 'nothing but the head before the 200');
        socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        socket.on('data', (d: Buffer) => socket.write(d));
      }, 40);
    }, 5);
  });
  const s = await startServer(t, { upgrade: connectTo(up.port) });
  const c = await RawClient.connect(t, s.port);
  c.write(`${connectHead}\x16\x03\x01early`);
  await c.waitText('HTTP/1.1 200 Connection Established\r\n\r\n');
  assert.equal(up.connections[0]!(), `${connectHead}\x16\x03\x01early`);
  c.write('more');
  await c.waitText('more');
  assert.equal(s.upgrades[0]!.pending.head.method, 'CONNECT');
  assert.equal(s.exchanges.length, 0);
});

test('upgrade smuggling: when the upstream declines, its answer is relayed and the bytes after the upgrade are parsed as the next request', T, async (t) => {
  const declines = [
    'HTTP/1.1 400 Bad Request\r\nContent-Length: 7\r\nConnection: keep-alive\r\n\r\nno ws!\n',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Plain: yes\r\n\r\n5\r\nplain\r\n0\r\n\r\n',
    // No framing: the body runs until the upstream closes.
    'HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\nnope',
  ];
  let n = 0;
  const up = await startUpstream(t, (socket, received) => {
    const answer = declines[n++]!;
    const wait = setInterval(() => {
      if (!received().includes('\r\n\r\n')) return;
      clearInterval(wait);
      if (answer.includes('Connection: close')) socket.end(answer);
      else socket.write(answer);
    }, 5);
  });
  const s = await startServer(t, {
    upgrade: connectTo(up.port),
    request(ex) {
      reply(ex, 200, `handler saw ${ex.method} ${ex.path}`);
    },
  });
  const expected: Array<{ status: number; body: string }> = [
    { status: 400, body: 'no ws!\n' },
    { status: 200, body: 'plain' },
    { status: 403, body: 'nope' },
  ];
  for (const [i, want] of expected.entries()) {
    const c = await RawClient.connect(t, s.port);
    // The "WebSocket frame" is a request: with the upgrade declined, it must be parsed as one.
    c.write(`${WS_HEAD}GET /admin HTTP/1.1\r\nHost: svc.local\r\n\r\n`);
    const declined = await readResponse(c);
    assert.equal(declined.status, want.status, `decline ${i}`);
    assert.equal(declined.body, want.body);
    const names = declined.headers.filter((_, k) => k % 2 === 0);
    assert.ok(!names.includes('connection'), 'hop-by-hop headers of the upstream are not relayed');
    const next = await readResponse(c);
    assert.equal(next.status, 200);
    assert.equal(next.body, 'handler saw GET /admin', 'the request after the declined upgrade went to the handler');
    assert.equal(up.connections[i]!(), WS_HEAD, 'the upstream of the upgrade saw only its head');
    assert.equal(c.closed, false, 'the connection goes on as HTTP/1.1');
  }
  assert.equal(s.exchanges.length, 3);
  assert.deepEqual(s.exchanges.map((e) => e.path), ['/admin', '/admin', '/admin']);
});

test('an upgrade with no upstream is refused (503) and the bytes after it are never served', T, async (t) => {
  const s = await startServer(t);
  const c = await RawClient.connect(t, s.port);
  c.write(`${WS_HEAD}GET /admin HTTP/1.1\r\nHost: svc.local\r\n\r\n`);
  await c.waitClosed();
  assert.equal(c.text(), 'HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
  assert.equal(s.exchanges.length, 0);
});

test('an upgrade with a body is served as a plain request; CONNECT with content is 400', T, async (t) => {
  const s = await startServer(t, {
    request(ex) {
      reply(ex, 200, `plain ${ex.path} ${(ex.body as Buffer).toString()}`);
    },
  });
  const c = await RawClient.connect(t, s.port);
  c.write('POST /up HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 2\r\n\r\nhi');
  const r = await readResponse(c);
  assert.equal(r.body, 'plain /up hi');
  assert.equal(s.upgrades.length, 0);
  assert.equal(s.exchanges[0]!.headers['upgrade'], undefined, 'Upgrade is hop-by-hop');
  const c2 = await RawClient.connect(t, s.port);
  c2.write('CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\nContent-Length: 3\r\n\r\nabc');
  await c2.waitClosed();
  assert.equal(c2.text(), 'HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
  assert.equal(s.upgrades.length, 0);
});

test('HEAD: the response carries content-length but no body, and the connection is reused', T, async (t) => {
  const s = await startServer(t, {
    request(ex) {
      ex.writeHead(200, { 'content-length': '11', 'content-type': 'text/plain' });
      // The handler writes the body as for GET: none of it goes out for HEAD.
      ex.write(Buffer.from('hello'));
      ex.write(Buffer.from(' world'));
      ex.end();
    },
  });
  const c = await RawClient.connect(t, s.port);
  c.write('HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n');
  const r1 = await readResponse(c, { noBody: true });
  assert.equal(r1.raw, 'HTTP/1.1 200 OK\r\ncontent-length: 11\r\ncontent-type: text/plain\r\n\r\n');
  c.write(GET('/x'));
  const r2 = await readResponse(c);
  // The GET's response starts right after the HEAD's head: no stray body bytes.
  assert.equal(r2.raw, 'HTTP/1.1 200 OK\r\ncontent-length: 11\r\ncontent-type: text/plain\r\n\r\nhello world');
  assert.equal(c.pending().length, 0);
  assert.equal(s.accepted.length, 1);
});

test('the client closing in the middle of a response fires the exchange\'s onClose', T, async (t) => {
  let closes = 0;
  let doneCloses = 0;
  const s = await startServer(t, {
    request(ex) {
      if (ex.path === '/done') {
        ex.onClose(() => doneCloses++);
        return reply(ex, 200, 'ok');
      }
      ex.onClose(() => closes++);
      ex.writeHead(200, { 'content-length': '100' });
      ex.write(Buffer.from('partial'));
    },
  });
  // A completed exchange's listener is not called when the client later goes.
  const c0 = await RawClient.connect(t, s.port);
  c0.write(GET('/done'));
  await readResponse(c0);
  c0.socket.destroy();

  const c = await RawClient.connect(t, s.port);
  c.write(GET('/slow'));
  await c.waitText('partial');
  const ex = s.exchanges[1]!;
  assert.equal(ex.closed, false);
  assert.equal(closes, 0);
  c.socket.destroy();
  await until(() => closes > 0, 'onClose');
  await sleep(20);
  assert.equal(closes, 1, 'called once');
  assert.equal(ex.closed, true);
  assert.equal(ex.write(Buffer.from('more')), false, 'writes after the client left are refused');
  ex.end();
  await until(() => s.h1.size === 0, 'the server to forget the connections');
  assert.equal(doneCloses, 0);
});

test('Expect: 100-continue is answered before the final response, and not forwarded', T, async (t) => {
  const s = await startServer(t, {
    request(ex) {
      reply(ex, 200, `got ${(ex.body as Buffer).toString()}`);
    },
  });
  const c = await RawClient.connect(t, s.port);
  c.write('POST /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nX-Keep: 1\r\nContent-Length: 5\r\n\r\n');
  await c.waitText('\r\n\r\n');
  assert.equal(c.text(), 'HTTP/1.1 100 Continue\r\n\r\n', 'the client is told to send the body');
  assert.equal(s.exchanges.length, 0, 'the request waits for its body');
  c.write('hello');
  await c.waitText('got hello');
  assert.equal(c.text(), 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\ngot hello');
  const ex = s.exchanges[0]!;
  assert.equal(ex.headers['expect'], undefined);
  assert.deepEqual(ex.headers, { 'x-keep': '1', 'content-length': '5' });

  // Chunked with 100-continue: the same.
  const s2 = await startServer(t, {
    request(ex2) {
      assert.ok(isSource(ex2.body));
      void readBody(ex2.body).then((b) => reply(ex2, 200, b.data));
    },
  });
  const c3 = await RawClient.connect(t, s2.port);
  c3.write('PUT /c HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nTransfer-Encoding: chunked\r\n\r\n');
  await c3.waitText('HTTP/1.1 100 Continue\r\n\r\n');
  c3.write('2\r\nok\r\n0\r\n\r\n');
  await c3.waitText('\r\n\r\nok');
  assert.equal(c3.text(), 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
  assert.equal(s2.exchanges[0]!.headers['expect'], undefined);
});

test('an idle keep-alive connection is closed after keepAliveTimeoutMs', T, async (t) => {
  const s = await startServer(t, {}, { keepAliveTimeoutMs: 200, headersTimeoutMs: 1000 });
  const c = await RawClient.connect(t, s.port);
  c.write(GET('/'));
  await readResponse(c);
  const idleFrom = performance.now();
  await sleep(100);
  assert.equal(c.closed || c.ended, false, 'not before the timeout');
  await until(() => c.ended, 'the idle connection to be closed', 2000);
  const elapsed = performance.now() - idleFrom;
  assert.ok(elapsed >= 190 && elapsed < 200 + 100 + 400, `closed after ${elapsed.toFixed(0)} ms idle`);
  assert.equal(c.pending().length, 0, 'closed without a response');
  // A connection that never sends a request is closed as well.
  const c2 = await RawClient.connect(t, s.port);
  await until(() => c2.ended, 'the silent connection to be closed', 2000);
  assert.equal(c2.data.length, 0);
  await until(() => s.h1.size === 0, 'the server to forget the connections');
});

test('drain: close() ends idle connections at once and busy ones after their response, with connection: close', T, async (t) => {
  let hold: DownstreamExchange | undefined;
  const s = await startServer(t, {
    request(ex) {
      if (ex.path === '/slow') hold = ex;
      else reply(ex, 200, 'quick');
    },
  });
  const idle = await RawClient.connect(t, s.port);
  idle.write(GET('/quick'));
  await readResponse(idle);
  const fresh = await RawClient.connect(t, s.port);
  const busy = await RawClient.connect(t, s.port);
  busy.write(GET('/slow'));
  await until(() => hold !== undefined && s.h1.size === 3, 'the slow request and three connections');

  s.h1.close();
  await until(() => idle.ended && fresh.ended, 'idle connections to be closed');
  assert.equal(idle.pending().length, 0);
  assert.equal(fresh.data.length, 0);
  await sleep(30);
  assert.equal(busy.ended, false, 'the busy connection stays until its response is done');
  assert.equal(busy.data.length, 0);

  reply(hold!, 200, 'slow');
  await busy.waitClosed();
  assert.equal(busy.text(), 'HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nslow');
  await until(() => s.h1.size === 0, 'no connections left');

  // A connection that still arrives while closing (a tunnel stream accepted before the
  // GOAWAY and sniffed meanwhile) has its request answered, with connection: close.
  const late = await RawClient.connect(t, s.port);
  late.write(GET('/quick'));
  await late.waitClosed();
  assert.equal(late.text(), 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nquick');
  assert.equal(s.exchanges.length, 3);
});

test('hand-off: a busy keep-alive connection is given away once its response is written, and its next request is served by the taker, not closed', T, async (t) => {
  let answer: (() => void) | undefined;
  const s = await startServer(t, {
    request(ex) {
      // The first request is held until the hand-off was asked for.
      answer = () => reply(ex, 200, 'old', {});
    },
  });
  const c = await RawClient.connect(t, s.port);
  c.write(GET('/busy'));
  await until(() => answer !== undefined, 'the first request dispatched');

  const taken: net.Socket[] = [];
  s.h1.handOffWhenIdle((socket) => taken.push(socket));
  assert.equal(s.h1.handingOff(), 1, 'the busy connection waits for its response');
  assert.equal(taken.length, 0);
  answer!();
  const r1 = await readResponse(c);
  assert.equal(r1.raw, 'HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nold', 'no connection: close on the response');
  await until(() => taken.length === 1, 'the connection handed off after its response');
  assert.equal(s.h1.handingOff(), 0);

  // The taker (the next agent) serves the next request on the same client connection.
  const next = new H1Server({ request(ex) { reply(ex, 200, 'new', {}); }, upgrade(p) { p.refuse(503, 'none'); } }, LIMITS, log);
  t.after(() => next.close());
  next.serve(taken[0]!);
  taken[0]!.resume();
  c.write(GET('/next'));
  const r2 = await readResponse(c);
  assert.equal(r2.raw, 'HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nnew');
  assert.equal(s.exchanges.length, 1, 'the old server saw only the first request');
  assert.equal(c.closed || c.ended, false, 'the client connection stayed open throughout');
});

test('hand-off: keepAll stops waiting, and the busy connection is served on here', T, async (t) => {
  const held: Array<() => void> = [];
  const s = await startServer(t, {
    request(ex) {
      if (ex.path === '/held') held.push(() => reply(ex, 200, 'held', {}));
      else reply(ex, 200, 'here', {});
    },
  });
  const c = await RawClient.connect(t, s.port);
  c.write(GET('/held'));
  await until(() => held.length === 1, 'the request dispatched');
  s.h1.handOffWhenIdle(() => assert.fail('not handed after keepAll'));
  s.h1.keepAll();
  assert.equal(s.h1.handingOff(), 0);
  held[0]!();
  await readResponse(c);
  c.write(GET('/next'));
  const r = await readResponse(c);
  assert.equal(r.raw, 'HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nhere');
});
