import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { Cancellation } from '../http/cancellation';
import type { BodySink, BodySource, UpstreamResponse } from '../http/exchange';
import type { HeaderRecord } from '../http/headers';
import { ChunkedDecoder } from './chunked-decoder';
import { findHeadEnd, parseRequestHead, type RequestHead } from './head-parser';
import { H1ClientPool } from './client-pool';
import type { H1UpstreamRequest } from './client-connection';
import { readBody } from './testing';

/**
 * H1ClientPool / H1ClientConnection against a raw loopback upstream the test controls: it
 * counts connections, parses each request strictly (the unit-tested parsers), and answers
 * with exact bytes, including chunked, close-delimited and malformed responses.
 */

const T = { timeout: 8000 };
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function until(pred: () => boolean, what: string, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** One request as the upstream received it. */
interface Seen {
  /** 1-based index of the upstream connection it came on. */
  conn: number;
  head: RequestHead;
  /** The request's bytes exactly as received (head and framed body). */
  raw: string;
  /** The decoded body. */
  body: string;
  trailers: string[];
  socket: net.Socket;
}

interface Upstream {
  port: number;
  /** Connections accepted so far. */
  connections: () => number;
  /** Upstream sockets, by connection index - 1. */
  sockets: net.Socket[];
  seen: Seen[];
  /** Connections closed (either side). */
  closed: () => number;
}

/**
 * A raw HTTP/1.1 upstream on 127.0.0.1. `respond` is called for each complete request (in
 * order per connection) and writes whatever bytes the test wants.
 */
async function upstream(t: TestContext, respond: (req: Seen, socket: net.Socket) => void): Promise<Upstream> {
  let connections = 0;
  let closed = 0;
  const sockets: net.Socket[] = [];
  const seen: Seen[] = [];
  const server = net.createServer((socket) => {
    const conn = ++connections;
    sockets.push(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => closed++);
    let buf = Buffer.alloc(0);
    let cur: { head: RequestHead; raw: Buffer[]; body: Buffer[]; decoder: ChunkedDecoder | undefined; remaining: number } | undefined;
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (!cur) {
          const end = findHeadEnd(buf, 0);
          if (end < 0) return;
          const head = parseRequestHead(buf, end);
          cur = { head, raw: [buf.subarray(0, end)], body: [], decoder: head.chunked ? new ChunkedDecoder() : undefined, remaining: head.contentLength ?? 0 };
          buf = buf.subarray(end);
        }
        const c = cur;
        if (c.decoder) {
          const used = c.decoder.push(buf, (x) => c.body.push(Buffer.from(x)));
          c.raw.push(buf.subarray(0, used));
          buf = buf.subarray(used);
          if (!c.decoder.done) return;
        } else {
          const n = Math.min(c.remaining, buf.length);
          c.raw.push(buf.subarray(0, n));
          c.body.push(buf.subarray(0, n));
          c.remaining -= n;
          buf = buf.subarray(n);
          if (c.remaining > 0) return;
        }
        cur = undefined;
        const req: Seen = {
          conn,
          head: c.head,
          raw: Buffer.concat(c.raw).toString('latin1'),
          body: Buffer.concat(c.body).toString('latin1'),
          trailers: c.decoder ? c.decoder.trailers : [],
          socket,
        };
        seen.push(req);
        respond(req, socket);
        if (socket.destroyed || buf.length === 0) return;
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { port: (server.address() as net.AddressInfo).port, connections: () => connections, sockets, seen, closed: () => closed };
}

/** A pool whose connections are loopback sockets to `port`; closed (and its sockets destroyed) after the test. */
function makePool(t: TestContext, port: number, maxConnections = 4): { pool: H1ClientPool; sockets: net.Socket[] } {
  const sockets: net.Socket[] = [];
  const pool = new H1ClientPool(
    () =>
      new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1');
        sockets.push(s);
        s.once('connect', () => resolve(s));
        s.once('error', reject);
      }),
    { maxConnections, keepAliveMs: 5000 },
  );
  t.after(() => {
    pool.close();
    for (const s of sockets) s.destroy();
  });
  return { pool, sockets };
}

function req(method: string, path: string, extra: Partial<H1UpstreamRequest> = {}): H1UpstreamRequest {
  return { method, path, authority: 'svc.ns:8080', headers: {}, body: undefined, ...extra };
}


async function fetchWhole(pool: H1ClientPool, r: H1UpstreamRequest, cancel?: Cancellation): Promise<{ res: UpstreamResponse; data: string; trailers: HeaderRecord | undefined }> {
  const res = await pool.request(r, cancel);
  const b = await readBody(res.body);
  return { res, ...b };
}

/** A BodySource the test pushes chunks into (a streamed downstream body). */
function pushSource(): { source: BodySource; push(s: string): void; end(trailers?: HeaderRecord): void } {
  let sink: BodySink | undefined;
  const pending: Array<(s: BodySink) => void> = [];
  const run = (fn: (s: BodySink) => void) => (sink ? fn(sink) : pending.push(fn));
  return {
    source: {
      start(s) {
        sink = s;
        for (const fn of pending.splice(0)) fn(s);
      },
      resume() {},
      destroy() {},
      discard() {},
    },
    push: (s) => run((k) => void k.write(Buffer.from(s, 'latin1'))),
    end: (trailers) => run((k) => k.end(trailers)),
  };
}

const ok = (body: string, extra = '') => `HTTP/1.1 200 OK\r\n${extra}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

/** How many times `name` appears among the head's header names. */
const count = (head: RequestHead, name: string) => head.headers.filter((_, i) => i % 2 === 0 && head.headers[i] === name).length;

// ---------------------------------------------------------------------------------------------

test('keep-alive: sequential requests reuse one connection; requests and responses are exact', T, async (t) => {
  const up = await upstream(t, (r, s) => {
    if (r.head.method === 'POST') s.write(`HTTP/1.1 201 Created\r\nX-Up: 1\r\nConnection: keep-alive\r\nContent-Length: ${r.body.length + 4}\r\n\r\ngot ${r.body}`);
    else s.write(ok(`path ${r.head.target}`, 'Content-Type: text/plain\r\n'));
  });
  const { pool } = makePool(t, up.port);
  const a = await fetchWhole(pool, req('GET', '/a?x=1', { headers: { 'x-request-id': 'r1', accept: ['a/b', 'c/d'] } }));
  assert.equal(a.res.status, 200);
  assert.deepEqual(a.res.headers, { 'content-type': 'text/plain', 'content-length': '11' });
  assert.equal(a.data, 'path /a?x=1');
  // A stale content-length from the downstream is replaced by the body's own.
  const b = await fetchWhole(pool, req('POST', '/b', { headers: { 'content-length': '999', 'x-a': '1' }, body: Buffer.from('hello') }));
  assert.equal(b.res.status, 201);
  assert.deepEqual(b.res.headers, { 'x-up': '1', 'content-length': '9' }, 'hop-by-hop headers are dropped');
  assert.equal(b.data, 'got hello');
  const c = await fetchWhole(pool, req('GET', '/c'));
  assert.equal(c.data, 'path /c');

  assert.equal(up.connections(), 1, 'one TCP connection for three requests');
  assert.equal(pool.connections, 1);
  assert.deepEqual(up.seen.map((s) => s.conn), [1, 1, 1]);
  assert.equal(up.seen[0]!.raw, 'GET /a?x=1 HTTP/1.1\r\nhost: svc.ns:8080\r\nx-request-id: r1\r\naccept: a/b\r\naccept: c/d\r\n\r\n');
  assert.equal(up.seen[1]!.raw, 'POST /b HTTP/1.1\r\nhost: svc.ns:8080\r\nx-a: 1\r\ncontent-length: 5\r\n\r\nhello');
  const post = up.seen[1]!.head;
  assert.equal(count(post, 'content-length'), 1);
  assert.equal(post.contentLength, 5);
  assert.equal(count(post, 'host'), 1);
  assert.equal(count(up.seen[0]!.head, 'content-length'), 0, 'no body, no content-length on a GET');
  // A POST without a body says so (the upstream must not wait for one).
  const d = await fetchWhole(pool, req('POST', '/empty'));
  assert.equal(d.data, 'got ');
  assert.equal(up.seen[3]!.raw, 'POST /empty HTTP/1.1\r\nhost: svc.ns:8080\r\ncontent-length: 0\r\n\r\n');
  assert.equal(up.connections(), 1);
});

test('a chunked response with trailers is decoded exactly; the connection is reused', T, async (t) => {
  const up = await upstream(t, (r, s) => {
    if (r.head.target === '/chunked') {
      s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n5\r\nhel');
      setTimeout(() => s.write('lo\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: 42\r\nGrpc-Status: 0\r\n\r\n'), 10);
    } else if (r.head.target === '/many') {
      // Many small chunks in one write, read by a consumer that starts a little later.
      s.write(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${[...'abcdefghijklmnopqrstuvwxyz'].map((ch) => `1\r\n${ch}\r\n`).join('')}0\r\n\r\n`);
    } else s.write(ok('next'));
  });
  const { pool } = makePool(t, up.port);
  const a = await fetchWhole(pool, req('GET', '/chunked'));
  assert.equal(a.res.status, 200);
  assert.deepEqual(a.res.headers, {}, 'transfer-encoding and trailer are hop-by-hop');
  assert.equal(a.data, 'hello world');
  assert.deepEqual(a.trailers, { 'x-sum': '42', 'grpc-status': '0' });
  const b = await fetchWhole(pool, req('GET', '/next'));
  assert.equal(b.data, 'next');
  assert.equal(b.trailers, undefined);

  const many = await pool.request(req('GET', '/many'));
  await sleep(20);
  assert.equal((await readBody(many.body)).data, 'abcdefghijklmnopqrstuvwxyz');
  const c = await fetchWhole(pool, req('GET', '/after-many'));
  assert.equal(c.data, 'next');
  assert.equal(up.connections(), 1);
});

test('a close-delimited response is read whole and its connection is not reused', T, async (t) => {
  const up = await upstream(t, (r, s) => {
    if (r.head.target === '/until-close') {
      s.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nabc');
      setTimeout(() => s.end('def'), 20);
    } else s.write(ok('next'));
  });
  const { pool } = makePool(t, up.port);
  const a = await fetchWhole(pool, req('GET', '/until-close'));
  assert.equal(a.res.status, 200);
  assert.equal(a.data, 'abcdef');
  await until(() => pool.connections === 0, 'the connection to leave the pool');
  const b = await fetchWhole(pool, req('GET', '/next'));
  assert.equal(b.data, 'next');
  assert.equal(up.connections(), 2, 'a new connection for the next request');
  assert.deepEqual(up.seen.map((s) => s.conn), [1, 2]);
});

test('a keep-alive connection the upstream closed while idle is not used again', T, async (t) => {
  const up = await upstream(t, (r, s) => {
    s.write(ok(`on ${r.conn}`));
    // The upstream's keep-alive timeout: it closes right after answering.
    if (r.conn === 1) setTimeout(() => s.end(), 10);
  });
  const { pool } = makePool(t, up.port);
  assert.equal((await fetchWhole(pool, req('GET', '/1'))).data, 'on 1');
  await until(() => up.closed() === 1 && pool.connections === 0, 'the idle connection to be closed and dropped');
  assert.equal((await fetchWhole(pool, req('GET', '/2'))).data, 'on 2');
  assert.equal(up.connections(), 2);
  assert.equal(up.seen.length, 2, 'the request was sent once');
});

test('a stale keep-alive connection closed when the next request arrives: the request is retried once on a new one', T, async (t) => {
  const up = await upstream(t, (r, s) => {
    // Connection 1 answers its first request, then closes on the next without answering.
    if (r.conn === 1 && up.seen.filter((x) => x.conn === 1).length > 1) s.destroy();
    else s.write(ok(`${r.head.method} ${r.body} on ${r.conn}`));
  });
  const { pool } = makePool(t, up.port);
  assert.equal((await fetchWhole(pool, req('GET', '/warm'))).data, 'GET  on 1');
  const b = await fetchWhole(pool, req('PUT', '/again', { body: Buffer.from('payload') }));
  assert.equal(b.res.status, 200);
  assert.equal(b.data, 'PUT payload on 2');
  assert.equal(up.connections(), 2);
  assert.deepEqual(up.seen.map((s) => `${s.conn} ${s.head.method}`), ['1 GET', '1 PUT', '2 PUT']);
  assert.equal(up.seen[1]!.raw, up.seen[2]!.raw, 'the same request was sent again');
});

test('the same race when the upstream\'s close follows its response at once: the next request is retried', T, async (t) => {
  const up = await upstream(t, (r, s) => {
    if (r.conn === 1 && up.seen.filter((x) => x.conn === 1).length > 1) return; // closing: never answers
    if (r.conn === 1) s.end(ok('first')); // response and FIN together
    else s.write(ok(`on ${r.conn}`));
  });
  const { pool } = makePool(t, up.port);
  const first = await pool.request(req('GET', '/1'));
  // Whether the FIN was seen before this request went out or after, it succeeds.
  const second = pool.request(req('GET', '/2'));
  assert.equal((await readBody(first.body)).data, 'first');
  const b = await second;
  assert.equal((await readBody(b.body)).data, 'on 2');
  assert.equal(up.connections(), 2);
});

test('a failure that cannot be a stale keep-alive is not retried', T, async (t) => {
  const up = await upstream(t, (r, s) => {
    if (r.head.target === '/warm') s.write(ok('warm'));
    else s.destroy();
  });
  const { pool } = makePool(t, up.port);
  // A fresh connection that fails: the upstream's own failure, not a race.
  await assert.rejects(pool.request(req('GET', '/fresh')), { code: 'ECONNRESET' });
  assert.equal(up.seen.length, 1);
  // A streamed body cannot be sent again.
  assert.equal((await fetchWhole(pool, req('GET', '/warm'))).data, 'warm');
  const src = pushSource();
  const p = pool.request(req('POST', '/stream', { body: src.source }));
  src.push('data');
  src.end();
  await assert.rejects(p, { code: 'ECONNRESET' });
  assert.equal(up.seen.filter((s) => s.head.target === '/stream').length, 1, 'sent once');
});

test('maxConnections 1: concurrent requests wait their turn on one connection', T, async (t) => {
  let inFlight = 0;
  let maxInFlight = 0;
  const up = await upstream(t, (r, s) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    setTimeout(() => {
      inFlight--;
      s.write(ok(`answer ${r.head.target}`));
    }, 15);
  });
  const { pool } = makePool(t, up.port, 1);
  const results = await Promise.all(['/1', '/2', '/3'].map((p) => fetchWhole(pool, req('GET', p))));
  assert.deepEqual(results.map((r) => r.data), ['answer /1', 'answer /2', 'answer /3']);
  assert.equal(up.connections(), 1);
  assert.equal(maxInFlight, 1);
  assert.equal(pool.connections, 1);
});

test('cancellation while waiting for the response rejects and destroys the connection', T, async (t) => {
  const up = await upstream(t, () => undefined); // never answers
  const { pool } = makePool(t, up.port);
  const cancel = new Cancellation();
  const p = pool.request(req('GET', '/hang'), cancel);
  await until(() => up.seen.length === 1, 'the request to reach the upstream');
  const reason = Object.assign(new Error('client went away'), { code: 'ERR_NM_CANCELLED' });
  cancel.cancel(reason);
  await assert.rejects(p, (err: Error) => err === reason);
  await until(() => up.closed() === 1, 'the upstream connection to be closed');
  assert.equal(pool.connections, 0);
  // Without a reason: the cancellation error.
  const c2 = new Cancellation();
  const p2 = pool.request(req('GET', '/hang2'), c2);
  await until(() => up.seen.length === 2, 'the second request');
  c2.cancel();
  await assert.rejects(p2, { code: 'ERR_NM_CANCELLED' });
  await until(() => up.closed() === 2, 'the second connection to be closed');
});

test('cancellation while queued rejects and nothing reaches the upstream', T, async (t) => {
  const held: net.Socket[] = [];
  const up = await upstream(t, (r, s) => {
    if (r.head.target === '/slow') held.push(s);
    else s.write(ok(`answer ${r.head.target}`));
  });
  const { pool } = makePool(t, up.port, 1);
  const slow = pool.request(req('GET', '/slow'));
  await until(() => held.length === 1, 'the first request');
  const cancel = new Cancellation();
  const queued = pool.request(req('GET', '/queued'), cancel);
  const after = pool.request(req('GET', '/after'));
  await sleep(10);
  cancel.cancel();
  await assert.rejects(queued, { code: 'ERR_NM_CANCELLED' });
  held[0]!.write(ok('slow'));
  assert.equal((await readBody((await slow).body)).data, 'slow');
  assert.equal((await readBody((await after).body)).data, 'answer /after');
  await sleep(20);
  assert.deepEqual(up.seen.map((s) => s.head.target), ['/slow', '/after'], 'the cancelled request never went out');
  assert.equal(up.connections(), 1);
  // Already cancelled: rejected at once.
  const dead = new Cancellation();
  dead.cancel();
  await assert.rejects(pool.request(req('GET', '/never'), dead), { code: 'ERR_NM_CANCELLED' });
  assert.equal(up.seen.length, 2);
});

test('a malformed response head rejects with ERR_NM_UPSTREAM_PROTOCOL', T, async (t) => {
  const bad: Record<string, string> = {
    '/dup-cl': 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx',
    '/bare-lf': 'HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n',
    '/status': 'HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n',
    '/space': 'HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n',
    '/obs-fold': 'HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\nContent-Length: 0\r\n\r\n',
  };
  const up = await upstream(t, (r, s) => s.write(bad[r.head.target] ?? ok('fine')));
  const { pool } = makePool(t, up.port);
  for (const path of Object.keys(bad)) {
    await assert.rejects(pool.request(req('GET', path)), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ERR_NM_UPSTREAM_PROTOCOL', `${path}: ${err.message}`);
      return true;
    });
  }
  assert.equal(up.connections(), Object.keys(bad).length, 'a connection that sent a bad response is never reused');
  // A head that never ends within 64 KiB.
  const up2 = await upstream(t, (_r, s) => s.write(`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(70 * 1024)}`));
  const { pool: pool2 } = makePool(t, up2.port);
  await assert.rejects(pool2.request(req('GET', '/')), { code: 'ERR_NM_UPSTREAM_PROTOCOL' });
  // A malformed chunked body: the response was given, its body fails.
  const up3 = await upstream(t, (_r, s) => s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n'));
  const { pool: pool3 } = makePool(t, up3.port);
  const res = await pool3.request(req('GET', '/'));
  await assert.rejects(readBody(res.body), { code: 'ERR_NM_UPSTREAM_PROTOCOL' });
  await until(() => pool3.connections === 0, 'the connection to be dropped');
});

test('a streamed request body is sent chunked when its length is unknown, with content-length when known', T, async (t) => {
  const up = await upstream(t, (r, s) => s.write(ok(`${r.body.length}`)));
  const { pool } = makePool(t, up.port);

  const src = pushSource();
  const p = pool.request(req('POST', '/chunked', { headers: { 'content-type': 'application/grpc' }, body: src.source }));
  src.push('hello');
  await sleep(10);
  src.push('');
  src.push(' streamed world');
  src.end({ 'grpc-status': '0' });
  const a = await p;
  assert.equal((await readBody(a.body)).data, '20');
  const sa = up.seen[0]!;
  assert.equal(sa.raw, 'POST /chunked HTTP/1.1\r\nhost: svc.ns:8080\r\ncontent-type: application/grpc\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\nf\r\n streamed world\r\n0\r\ngrpc-status: 0\r\n\r\n');
  assert.equal(sa.body, 'hello streamed world');
  assert.deepEqual(sa.trailers, ['grpc-status', '0']);
  assert.equal(count(sa.head, 'content-length'), 0);

  const src2 = pushSource();
  const p2 = pool.request(req('PUT', '/known', { headers: { 'content-length': '3' }, body: src2.source, contentLength: 11 }));
  src2.push('hello');
  await sleep(10);
  src2.push(' world');
  src2.end();
  const b = await p2;
  assert.equal((await readBody(b.body)).data, '11');
  const sb = up.seen[1]!;
  assert.equal(sb.raw, 'PUT /known HTTP/1.1\r\nhost: svc.ns:8080\r\ncontent-length: 11\r\n\r\nhello world');
  assert.equal(count(sb.head, 'content-length'), 1);
  assert.equal(up.connections(), 1, 'streamed requests keep the connection');
});

test('204 and a response to HEAD have no body, and the connection is reused', T, async (t) => {
  const up = await upstream(t, (r, s) => {
    if (r.head.target === '/204') s.write('HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n');
    else if (r.head.method === 'HEAD') s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\n');
    else s.write(ok('hello'));
  });
  const { pool } = makePool(t, up.port);
  const a = await pool.request(req('DELETE', '/204'));
  assert.equal(a.status, 204);
  assert.equal(a.body, undefined);
  assert.deepEqual(a.headers, { 'x-a': '1' });
  const h = await pool.request(req('HEAD', '/x'));
  assert.equal(h.status, 200);
  assert.equal(h.body, undefined);
  assert.deepEqual(h.headers, { 'content-length': '5', 'content-type': 'text/plain' });
  // The next response is parsed from the right place (no body was expected after HEAD).
  const g = await fetchWhole(pool, req('GET', '/x'));
  assert.equal(g.res.status, 200);
  assert.equal(g.data, 'hello');
  assert.equal(up.connections(), 1);
  assert.equal(pool.connections, 1);
});

test('close(): idle connections close, waiting requests fail, later requests are refused', T, async (t) => {
  const held: net.Socket[] = [];
  const up = await upstream(t, (r, s) => {
    if (r.head.target === '/slow') held.push(s);
    else s.write(ok('x'));
  });
  const { pool } = makePool(t, up.port, 2);
  await fetchWhole(pool, req('GET', '/idle'));
  const slow = pool.request(req('GET', '/slow'));
  await until(() => held.length === 1, 'the slow request');
  const queuedA = pool.request(req('GET', '/slow')); // opens the second connection
  await until(() => held.length === 2, 'the second slow request');
  const queued = pool.request(req('GET', '/queued'));
  pool.close();
  await assert.rejects(queued, { code: 'ECONNREFUSED' });
  await assert.rejects(pool.request(req('GET', '/late')), { code: 'ECONNREFUSED' });
  // Busy connections finish their response, then close.
  held[0]!.write(ok('done'));
  assert.equal((await readBody((await slow).body)).data, 'done');
  await until(() => up.closed() === 1, 'the finished connection to close');
  held[1]!.write(ok('done2'));
  assert.equal((await readBody((await queuedA).body)).data, 'done2');
  await until(() => up.closed() === 2 && pool.connections === 0, 'all connections closed');
  assert.deepEqual(up.seen.map((s) => s.head.target), ['/idle', '/slow', '/slow']);
});

test('a request whose tunnel stream the peer refuses unprocessed goes again on a new one', T, async () => {
  // The upstream connections are HTTP/2 streams (as over the tunnel); the first one is
  // refused (RST_STREAM REFUSED_STREAM, a draining node proxy), the next one answers.
  const { connect: h2connect, createServer: h2server, constants: h2c } = await import('node:http2');
  const server = h2server();
  let streams = 0;
  server.on('stream', (stream) => {
    streams += 1;
    stream.on('error', () => undefined);
    if (streams === 1) {
      stream.once('data', () => stream.close(h2c.NGHTTP2_REFUSED_STREAM));
      return;
    }
    stream.respond({ [h2c.HTTP2_HEADER_STATUS]: 200 });
    stream.once('data', () => stream.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const session = h2connect(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`);
  const pool = new H1ClientPool(async () => session.request({ [h2c.HTTP2_HEADER_METHOD]: 'POST', [h2c.HTTP2_HEADER_PATH]: '/tunnel' }, { endStream: false }), { maxConnections: 4, keepAliveMs: 10_000 });
  try {
    const res = await pool.request({ method: 'POST', path: '/', authority: 'up', headers: {}, body: Buffer.from('once') });
    assert.equal(res.status, 200);
    assert.equal((await readBody(res.body)).data, 'ok');
    assert.equal(streams, 2, 'sent again on a second stream');
  } finally {
    pool.close();
    session.destroy();
    server.close();
  }
});
