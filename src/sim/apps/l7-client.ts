/**
 * The client of the L7 test app (l7-app.ts), run inside simulated pods by the tests. Its
 * last stdout line is always one JSON object; it exits 0 whenever it printed one (HTTP
 * errors and transport errors included), 2 on a usage error.
 *
 *   http URL [--method M] [--header k:v]... [--body S] [--count N] [--concurrency C] [--h2c]
 *       N = 1: {status, headers, body, servedBy, ms, json?}   (json: the body, if it parses)
 *       N > 1: {count, statuses: {"200": n}, servedBy: {b1: n}, errors: {CODE: n}, p50Ms, p99Ms, ms}
 *       HTTP/1.1 through undici (keep-alive, C connections); --h2c: one HTTP/2 prior-knowledge
 *       connection (node:http2) with C concurrent streams.
 *   grpc HOST:PORT unary|server-stream|client-stream|bidi [--message M] [--count N]
 *        [--fail-code C] [--calls N]
 *       {ok: true, replies: [{message, served_by, index}], servedBy: {b1: calls}}, or
 *       {ok: false, code, details, replies, servedBy}; with --calls > 1 also {calls, codes: {"0": n}}.
 *       --count: server-stream asks for N replies; client-stream and bidi send N messages
 *       (fail_code rides on the last one).
 *   ws URL MESSAGE                        {reply}
 *   tls HOST PORT SERVERNAME MESSAGE      {reply, servedBy, sni, echo, peerCN}  (no verification;
 *                                         SERVERNAME '-' sends no SNI)
 *   slowloris HOST PORT SECONDS           {closedByPeerAfterMs, received} or {stillOpen: true}
 *   bigheader URL BYTES                   {status, servedBy} or {error}
 *   smuggle HOST PORT cl-te|cl-cl         {statusLine, statusLines, bytes, closed} or {error}
 *   raw HOST PORT BASE64                  the same, for exactly these bytes
 *   noread URL SECONDS                    {stillConnected, receivedBytes, closedBy?}
 * Every subcommand takes --timeout MS (default 10000; per request / per call). A failure is
 * {error: CODE, message}.
 */
import { connect as h2connect, constants as h2constants, type ClientHttp2Session, type IncomingHttpHeaders as H2Headers } from 'node:http2';
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { connect as tlsConnect } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { Agent } from 'undici';
import WebSocket from 'ws';
import { loadEchoService, type EchoReply, type EchoRequest } from './l7-app';
import { formatHostPort } from '../../util/host-port';

export const DEFAULT_TIMEOUT_MS = 10_000;

export interface ErrorResult { error: string; message?: string }

/** A stable code for an error: its errno-style code, ETIMEDOUT for timeouts, else its message. */
export function errorCode(err: unknown): string {
  const e = err as { code?: unknown; name?: string; message?: string; cause?: unknown } | undefined;
  if (!e) return 'UNKNOWN';
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'ETIMEDOUT';
  if (typeof e.code === 'string') {
    // undici wraps socket errors; the cause has the errno.
    const cause = e.cause as { code?: unknown } | undefined;
    if (e.code === 'UND_ERR_SOCKET' && typeof cause?.code === 'string') return cause.code;
    return e.code;
  }
  return e.message ?? String(err);
}

function errorResult(err: unknown): ErrorResult {
  const code = errorCode(err);
  let message = err instanceof Error ? err.message : String(err);
  // Happy-eyeballs connects fail with an AggregateError and no message of its own.
  const inner = (err as { errors?: unknown[] } | undefined)?.errors;
  if (!message && Array.isArray(inner)) message = inner.map((e) => (e instanceof Error ? e.message : String(e))).join('; ');
  return { error: code, message: message || code };
}

// ---------------------------------------------------------------------------------- HTTP

export interface HttpOptions {
  method?: string;
  headers?: Record<string, string | string[]>;
  body?: string;
  count?: number;
  concurrency?: number;
  h2c?: boolean;
  timeoutMs?: number;
}

export interface HttpSingleResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  servedBy?: string;
  ms: number;
  json?: unknown;
}

export interface HttpSummaryResult {
  count: number;
  statuses: Record<string, number>;
  servedBy: Record<string, number>;
  errors: Record<string, number>;
  p50Ms: number | null;
  p99Ms: number | null;
  ms: number;
}

interface RawResponse { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }

type Transport = { one(): Promise<RawResponse>; close(): Promise<void> };

function undiciTransport(url: URL, options: HttpOptions, connections: number): Transport {
  const t = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const agent = new Agent({ connections, connectTimeout: t, headersTimeout: t, bodyTimeout: t, keepAliveTimeout: 30_000 });
  return {
    async one() {
      const res = await agent.request({
        origin: url.origin,
        path: `${url.pathname}${url.search}`,
        method: (options.method ?? 'GET') as 'GET',
        headers: options.headers ?? {},
        body: options.body,
        signal: AbortSignal.timeout(t),
      });
      const body = Buffer.from(await res.body.arrayBuffer());
      return { status: res.statusCode, headers: res.headers, body };
    },
    async close() {
      await agent.destroy().catch(() => undefined);
    },
  };
}

async function h2Transport(url: URL, options: HttpOptions): Promise<Transport> {
  const t = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const session: ClientHttp2Session = h2connect(url.origin);
  let sessionError: Error | undefined;
  session.on('error', (err) => { sessionError = err; });
  await new Promise<void>((resolveConnected, reject) => {
    const timer = setTimeout(() => reject(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' })), t);
    session.once('connect', () => { clearTimeout(timer); resolveConnected(); });
    session.once('error', (err) => { clearTimeout(timer); reject(err); });
  }).catch((err: unknown) => {
    session.destroy();
    throw err;
  });
  const base: Record<string, string | string[]> = { ':method': options.method ?? 'GET', ':path': `${url.pathname}${url.search}` };
  for (const [k, v] of Object.entries(options.headers ?? {})) base[k.toLowerCase() === 'host' ? ':authority' : k.toLowerCase()] = v;
  return {
    one() {
      return new Promise<RawResponse>((resolveResponse, reject) => {
        const req = session.request(base);
        const chunks: Buffer[] = [];
        let head: H2Headers | undefined;
        let settled = false;
        const fail = (err: unknown) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          reject(sessionError ?? err);
        };
        const timer = setTimeout(() => {
          fail(Object.assign(new Error('request timed out'), { code: 'ETIMEDOUT' }));
          req.close(h2constants.NGHTTP2_CANCEL);
        }, t);
        req.on('response', (h) => { head = h; });
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          const headers: Record<string, string | string[] | undefined> = {};
          for (const [k, v] of Object.entries(head ?? {})) if (!k.startsWith(':')) headers[k] = v as string | string[] | undefined;
          resolveResponse({ status: Number(head?.[':status'] ?? 0), headers, body: Buffer.concat(chunks) });
        });
        req.on('error', fail);
        req.on('close', () => fail(Object.assign(new Error(`stream closed (rst ${req.rstCode})`), { code: `H2_RST_${req.rstCode ?? 0}` })));
        req.end(options.body);
      });
    },
    async close() {
      await new Promise<void>((r) => {
        const timer = setTimeout(() => { session.destroy(); r(); }, 1000);
        session.close(() => { clearTimeout(timer); r(); });
      });
    },
  };
}

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return Math.round(sorted[i]! * 100) / 100;
}

function servedByOf(headers: Record<string, string | string[] | undefined>): string | undefined {
  const v = headers['x-served-by'];
  return Array.isArray(v) ? v[0] : v;
}

/** `http URL ...`: one request gives its response, several give a summary. */
export async function httpCommand(target: string, options: HttpOptions = {}): Promise<HttpSingleResult | HttpSummaryResult | ErrorResult> {
  let url: URL;
  try {
    url = new URL(target);
  } catch (err) {
    return errorResult(err);
  }
  const count = Math.max(1, options.count ?? 1);
  const concurrency = Math.max(1, Math.min(count, options.concurrency ?? 1));
  let transport: Transport;
  try {
    transport = options.h2c ? await h2Transport(url, options) : undiciTransport(url, options, concurrency);
  } catch (err) {
    if (count === 1) return errorResult(err);
    return { count, statuses: {}, servedBy: {}, errors: { [errorCode(err)]: count }, p50Ms: null, p99Ms: null, ms: 0 };
  }
  const started = performance.now();
  try {
    if (count === 1) {
      try {
        const r = await transport.one();
        const body = r.body.toString('utf8');
        const result: HttpSingleResult = { status: r.status, headers: r.headers, body, servedBy: servedByOf(r.headers), ms: Math.round((performance.now() - started) * 100) / 100 };
        try {
          if (body.length > 0) result.json = JSON.parse(body);
        } catch { /* not JSON */ }
        return result;
      } catch (err) {
        return errorResult(err);
      }
    }
    const statuses: Record<string, number> = {};
    const servedBy: Record<string, number> = {};
    const errors: Record<string, number> = {};
    const latencies: number[] = [];
    let next = 0;
    const worker = async () => {
      while (next < count) {
        next += 1;
        const t0 = performance.now();
        try {
          const r = await transport.one();
          latencies.push(performance.now() - t0);
          statuses[r.status] = (statuses[r.status] ?? 0) + 1;
          const by = servedByOf(r.headers) ?? '(none)';
          servedBy[by] = (servedBy[by] ?? 0) + 1;
        } catch (err) {
          const code = errorCode(err);
          errors[code] = (errors[code] ?? 0) + 1;
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    latencies.sort((a, b) => a - b);
    return {
      count,
      statuses,
      servedBy,
      errors,
      p50Ms: percentile(latencies, 0.5),
      p99Ms: percentile(latencies, 0.99),
      ms: Math.round(performance.now() - started),
    };
  } finally {
    await transport.close();
  }
}

// ---------------------------------------------------------------------------------- gRPC

export type GrpcKind = 'unary' | 'server-stream' | 'client-stream' | 'bidi';
export const GRPC_KINDS: readonly GrpcKind[] = ['unary', 'server-stream', 'client-stream', 'bidi'];

export interface GrpcOptions {
  message?: string;
  count?: number;
  failCode?: number;
  calls?: number;
  timeoutMs?: number;
}

export interface GrpcResult {
  ok: boolean;
  replies: EchoReply[];
  servedBy: Record<string, number>;
  code?: number;
  details?: string;
  calls?: number;
  codes?: Record<string, number>;
}

type AnyCall = grpc.ClientReadableStream<EchoReply> & grpc.ClientWritableStream<EchoRequest>;
type Methods = {
  Unary(req: EchoRequest, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, reply?: EchoReply) => void): grpc.ClientUnaryCall;
  ServerStream(req: EchoRequest, options: grpc.CallOptions): grpc.ClientReadableStream<EchoReply>;
  ClientStream(options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, reply?: EchoReply) => void): grpc.ClientWritableStream<EchoRequest>;
  BidiStream(options: grpc.CallOptions): AnyCall;
};

interface CallOutcome { replies: EchoReply[]; error?: grpc.ServiceError }

function oneGrpcCall(client: grpc.Client & Methods, kind: GrpcKind, o: Required<Omit<GrpcOptions, 'calls'>>): Promise<CallOutcome> {
  const deadline = new Date(Date.now() + o.timeoutMs);
  const replies: EchoReply[] = [];
  return new Promise<CallOutcome>((done) => {
    const finish = (err: grpc.ServiceError | null | undefined) => done(err ? { replies, error: err } : { replies });
    const request = (last: boolean): EchoRequest => ({ message: o.message, count: o.count, fail_code: kind === 'unary' || kind === 'server-stream' || last ? o.failCode : 0 });
    if (kind === 'unary') {
      client.Unary(request(true), { deadline }, (err, reply) => {
        if (reply) replies.push(reply);
        finish(err);
      });
    } else if (kind === 'server-stream') {
      const call = client.ServerStream(request(true), { deadline });
      call.on('data', (r: EchoReply) => replies.push(r));
      call.on('error', (err: grpc.ServiceError) => finish(err));
      call.on('end', () => finish(null));
    } else if (kind === 'client-stream') {
      const call = client.ClientStream({ deadline }, (err, reply) => {
        if (reply) replies.push(reply);
        finish(err);
      });
      for (let i = 0; i < o.count; i++) call.write(request(i === o.count - 1));
      call.end();
    } else {
      const call = client.BidiStream({ deadline });
      call.on('data', (r: EchoReply) => replies.push(r));
      call.on('error', (err: grpc.ServiceError) => finish(err));
      call.on('end', () => finish(null));
      for (let i = 0; i < o.count; i++) call.write(request(i === o.count - 1));
      call.end();
    }
  });
}

/** `grpc HOST:PORT KIND ...` through one channel; --calls N runs N calls one after another. */
export async function grpcCommand(target: string, kind: GrpcKind, options: GrpcOptions = {}): Promise<GrpcResult | ErrorResult> {
  if (!GRPC_KINDS.includes(kind)) return { error: 'EINVAL', message: `unknown call type '${kind}' (${GRPC_KINDS.join('|')})` };
  const o = { message: options.message ?? 'hello', count: options.count ?? 1, failCode: options.failCode ?? 0, timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS };
  const calls = Math.max(1, options.calls ?? 1);
  let client: grpc.Client & Methods;
  try {
    const Echo = loadEchoService();
    client = new Echo(target, grpc.credentials.createInsecure(), { 'grpc.max_reconnect_backoff_ms': 1000 }) as unknown as grpc.Client & Methods;
  } catch (err) {
    return errorResult(err);
  }
  const result: GrpcResult = { ok: true, replies: [], servedBy: {} };
  const codes: Record<string, number> = {};
  try {
    for (let i = 0; i < calls; i++) {
      const outcome = await oneGrpcCall(client, kind, o);
      result.replies.push(...outcome.replies);
      const by = outcome.replies[0]?.served_by;
      if (by !== undefined) result.servedBy[by] = (result.servedBy[by] ?? 0) + 1;
      const code = outcome.error?.code ?? 0;
      codes[code] = (codes[code] ?? 0) + 1;
      if (outcome.error && result.ok) {
        result.ok = false;
        result.code = outcome.error.code;
        result.details = outcome.error.details;
      }
    }
  } finally {
    client.close();
  }
  if (calls > 1) {
    result.calls = calls;
    result.codes = codes;
  }
  return result;
}

// ----------------------------------------------------------------------------- WebSocket

/** `ws URL MESSAGE`: sends one message, resolves with the first one back. */
export function wsCommand(url: string, message: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<{ reply: string } | ErrorResult & { status?: number }> {
  return new Promise((done) => {
    let settled = false;
    let ws: WebSocket;
    const finish = (r: { reply: string } | ErrorResult & { status?: number }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try { ws.terminate(); } catch { /* already gone */ }
      done(r);
    };
    const timer = setTimeout(() => finish({ error: 'ETIMEDOUT', message: 'no reply in time' }), timeoutMs);
    try {
      ws = new WebSocket(url, { handshakeTimeout: timeoutMs });
    } catch (err) {
      finish(errorResult(err));
      return;
    }
    ws.on('open', () => ws.send(message));
    ws.on('message', (data: WebSocket.RawData) => {
      const text = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8');
      finish({ reply: text });
    });
    ws.on('unexpected-response', (_req, res) => finish({ error: 'EUNEXPECTEDRESPONSE', status: res.statusCode, message: `HTTP ${res.statusCode} instead of an upgrade` }));
    ws.on('error', (err) => finish(errorResult(err)));
    ws.on('close', (code) => finish({ error: 'ECLOSED', message: `closed with ${code} before a reply` }));
  });
}

// ----------------------------------------------------------------------------------- TLS

export interface TlsResult { reply: string; servedBy?: string; sni?: string; echo?: string; peerCN?: string; alpn?: string | false | null }

/** `tls HOST PORT SERVERNAME MESSAGE`: the app's "tls NAME sni=…" line plus the echo. */
export function tlsCommand(host: string, port: number, servername: string, message: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<TlsResult | ErrorResult> {
  return new Promise((done) => {
    const sni = servername && servername !== '-' && isIP(servername) === 0 ? servername : undefined;
    const s = tlsConnect({ host, port, servername: sni, rejectUnauthorized: false });
    const want = Buffer.byteLength(message);
    let got = Buffer.alloc(0);
    let settled = false;
    const finish = (r: TlsResult | ErrorResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      done(r);
    };
    const result = (): TlsResult => {
      const reply = got.toString('utf8');
      const nl = reply.indexOf('\n');
      const m = /^tls (\S+) sni=(\S*)/.exec(reply);
      const cert = s.getPeerCertificate();
      const cn = cert?.subject?.CN;
      return { reply, servedBy: m?.[1], sni: m?.[2], echo: nl >= 0 ? reply.slice(nl + 1) : undefined, peerCN: Array.isArray(cn) ? cn[0] : cn, alpn: s.alpnProtocol };
    };
    const timer = setTimeout(() => finish(got.length > 0 ? { ...result(), error: 'ETIMEDOUT' } as TlsResult : { error: 'ETIMEDOUT', message: 'no reply in time' }), timeoutMs);
    s.on('secureConnect', () => s.write(message));
    s.on('data', (c: Buffer) => {
      got = Buffer.concat([got, c]);
      const nl = got.indexOf(10);
      if (nl >= 0 && got.length - nl - 1 >= want) finish(result());
    });
    s.on('error', (err) => finish(errorResult(err)));
    s.on('close', () => finish(got.length > 0 ? result() : { error: 'ECLOSED', message: 'closed before a reply' }));
  });
}

// ------------------------------------------------------------------------ abuse helpers

function connectRaw(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolveSocket, reject) => {
    const s = netConnect({ host, port });
    const timer = setTimeout(() => { s.destroy(); reject(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' })); }, timeoutMs);
    s.once('connect', () => { clearTimeout(timer); s.removeListener('error', onError); resolveSocket(s); });
    const onError = (err: Error) => { clearTimeout(timer); reject(err); };
    s.once('error', onError);
  });
}

function hostHeader(host: string, port: number): string {
  return formatHostPort(host, port);
}

/**
 * `slowloris HOST PORT SECONDS`: sends a request line and then a header one byte a second,
 * never finishing it. {closedByPeerAfterMs, received} if the peer gave up first.
 */
export async function slowlorisCommand(host: string, port: number, seconds: number, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<{ closedByPeerAfterMs: number; received: string } | { stillOpen: true; sentBytes: number } | ErrorResult> {
  let s: Socket;
  try {
    s = await connectRaw(host, port, timeoutMs);
  } catch (err) {
    return errorResult(err);
  }
  const started = Date.now();
  let received = '';
  let sent = 0;
  const write = (text: string) => { sent += Buffer.byteLength(text); s.write(text); };
  return new Promise((done) => {
    s.setEncoding('utf8');
    s.on('data', (d: string) => { received += d; });
    s.on('error', () => undefined);
    const drip = 'X-Slowloris: ' + 'a'.repeat(Math.max(1, seconds));
    let i = 0;
    const ticker = setInterval(() => { if (i < drip.length) write(drip[i++]!); }, 1000);
    const end = setTimeout(() => {
      clearInterval(ticker);
      s.removeAllListeners('close');
      s.destroy();
      done({ stillOpen: true, sentBytes: sent });
    }, seconds * 1000);
    s.on('close', () => {
      clearInterval(ticker);
      clearTimeout(end);
      done({ closedByPeerAfterMs: Date.now() - started, received });
    });
    write(`GET / HTTP/1.1\r\nHost: ${hostHeader(host, port)}\r\n`);
  });
}

/** `bigheader URL BYTES`: one request with an `x-big` header of BYTES bytes. */
export async function bigheaderCommand(url: string, bytes: number, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<{ status: number; servedBy?: string } | ErrorResult> {
  const r = await httpCommand(url, { headers: { 'x-big': 'a'.repeat(Math.max(0, bytes)) }, timeoutMs });
  if ('error' in r) return r;
  const single = r as HttpSingleResult;
  return { status: single.status, servedBy: single.servedBy };
}

export type SmuggleKind = 'cl-te' | 'cl-cl';

/** The raw bytes of a request-smuggling attempt, followed by an innocent probe request. */
export function smugglePayload(host: string, port: number, kind: SmuggleKind): string {
  const h = hostHeader(host, port);
  const probe = `GET /smuggle-probe HTTP/1.1\r\nHost: ${h}\r\n\r\n`;
  if (kind === 'cl-te') {
    // A Content-Length reader forwards "0\r\n\r\nG"; a chunked reader stops after "0\r\n\r\n"
    // and sees "GGET /smuggle-probe" next.
    return `POST /echo HTTP/1.1\r\nHost: ${h}\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG${probe}`;
  }
  // Two different lengths: one reader takes "hello", the other "hello!".
  return `POST /echo HTTP/1.1\r\nHost: ${h}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!${probe}`;
}

export interface RawResult { statusLine: string | null; statusLines: string[]; bytes: number; closed: boolean; response: string }

/** `smuggle HOST PORT cl-te|cl-cl`: what came back (until close, or 1.5 s of quiet). */
export async function smuggleCommand(host: string, port: number, kind: SmuggleKind, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<RawResult | ErrorResult> {
  if (kind !== 'cl-te' && kind !== 'cl-cl') return { error: 'EINVAL', message: `unknown smuggling kind '${String(kind)}' (cl-te|cl-cl)` };
  return rawCommand(host, port, smugglePayload(host, port, kind), timeoutMs);
}

/**
 * `raw HOST PORT BASE64`: writes exactly these bytes on one connection (requests the
 * HTTP clients would not send: other methods, lower-case ones, leading empty lines,
 * absolute-form targets, pipelined requests after an upgrade); what came back, until the
 * peer closes or 1.5 s of quiet.
 */
export async function rawCommand(host: string, port: number, payload: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<RawResult | ErrorResult> {
  let s: Socket;
  try {
    s = await connectRaw(host, port, timeoutMs);
  } catch (err) {
    return errorResult(err);
  }
  return new Promise((done) => {
    const chunks: Buffer[] = [];
    let closed = false;
    let quiet: NodeJS.Timeout | undefined;
    const finish = () => {
      clearTimeout(overall);
      clearTimeout(quiet);
      s.destroy();
      const data = Buffer.concat(chunks);
      const text = data.toString('latin1');
      const statusLines = text.split('\r\n').filter((l) => /^HTTP\/\d(\.\d)? \d{3}/.test(l));
      done({ statusLine: statusLines[0] ?? null, statusLines, bytes: data.length, closed, response: text.slice(0, 2000) });
    };
    const overall = setTimeout(finish, timeoutMs);
    const arm = () => { clearTimeout(quiet); quiet = setTimeout(finish, 1500); };
    s.on('data', (c: Buffer) => { chunks.push(c); arm(); });
    s.on('error', () => undefined);
    s.on('close', () => { closed = true; finish(); });
    arm();
    s.write(payload, 'latin1');
  });
}

/**
 * `noread URL SECONDS`: asks for /bytes/50000000 (or URL's own path, if it has one) and
 * reads nothing for SECONDS. Then it reads: if the peer has closed (the bytes buffered so
 * far drain and the stream ends short of the whole response), stillConnected is false.
 */
export async function noreadCommand(target: string, seconds: number, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<{ stillConnected: boolean; receivedBytes: number; closedBy?: string } | ErrorResult> {
  let url: URL;
  try {
    url = new URL(target);
  } catch (err) {
    return errorResult(err);
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port || 80);
  const path = url.pathname === '/' || url.pathname === '' ? '/bytes/50000000' : `${url.pathname}${url.search}`;
  let s: Socket;
  try {
    s = await connectRaw(host, port, timeoutMs);
  } catch (err) {
    return errorResult(err);
  }
  let closedBy: string | undefined;
  s.on('error', (err: NodeJS.ErrnoException) => { closedBy ??= err.code ?? err.message; });
  s.on('end', () => { closedBy ??= 'end'; });
  s.write(`GET ${path} HTTP/1.1\r\nHost: ${hostHeader(host, port)}\r\nConnection: close\r\n\r\n`);
  // No 'data' listener: Node reads one high-water mark and then stops reading the socket.
  await new Promise((r) => setTimeout(r, seconds * 1000));
  return new Promise((done) => {
    let received = 0;
    let headerEnd = -1;
    let expected = Infinity;
    let head = Buffer.alloc(0);
    const finish = (stillConnected: boolean) => {
      clearTimeout(grace);
      s.destroy();
      done(closedBy && !stillConnected ? { stillConnected, receivedBytes: received, closedBy } : { stillConnected, receivedBytes: received });
    };
    // Long enough to drain what the kernel and the peer buffered, short of a whole 50 MB.
    const grace = setTimeout(() => finish(true), 3000);
    s.on('data', (c: Buffer) => {
      received += c.length;
      if (headerEnd < 0) {
        head = Buffer.concat([head, c]);
        headerEnd = head.indexOf('\r\n\r\n');
        if (headerEnd >= 0) {
          const m = /\r\ncontent-length:\s*(\d+)/i.exec(head.subarray(0, headerEnd).toString('latin1'));
          if (m) expected = headerEnd + 4 + Number(m[1]);
        }
      }
      if (received >= expected) finish(true);
    });
    s.on('close', () => finish(received >= expected));
    if (closedBy && s.destroyed) finish(false);
  });
}

// ----------------------------------------------------------------------------------- CLI

interface Parsed { positional: string[]; flags: Map<string, string[]> }

function parseArgs(argv: string[], booleans: string[]): Parsed {
  const positional: string[] = [];
  const flags = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith('--') && a.length > 2) {
      const key = a.slice(2);
      let value = 'true';
      if (!booleans.includes(key)) {
        if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
        value = argv[++i]!;
      }
      flags.set(key, [...(flags.get(key) ?? []), value]);
    } else {
      positional.push(a);
    }
  }
  return { positional, flags };
}

const USAGE = `usage: l7-client <command> ... [--timeout MS]
  http URL [--method M] [--header k:v]... [--body S] [--count N] [--concurrency C] [--h2c]
  grpc HOST:PORT unary|server-stream|client-stream|bidi [--message M] [--count N] [--fail-code C] [--calls N]
  ws URL MESSAGE
  tls HOST PORT SERVERNAME MESSAGE
  slowloris HOST PORT SECONDS
  bigheader URL BYTES
  smuggle HOST PORT cl-te|cl-cl
  raw HOST PORT BASE64
  noread URL SECONDS`;

class UsageError extends Error {}

/** Runs one command line (without `node l7-client.js`); resolves with the JSON to print. */
export async function runClient(argv: string[]): Promise<unknown> {
  const [command, ...rest] = argv;
  const { positional: p, flags } = parseArgs(rest, ['h2c']);
  const one = (k: string) => flags.get(k)?.at(-1);
  const num = (k: string, fallback: number) => {
    const v = one(k);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new UsageError(`--${k} must be a number`);
    return n;
  };
  const need = (n: number) => { if (p.length < n) throw new UsageError(`${command} needs ${n} arguments`); };
  const timeoutMs = num('timeout', DEFAULT_TIMEOUT_MS);
  switch (command) {
    case 'http': {
      need(1);
      const headers: Record<string, string | string[]> = {};
      for (const h of flags.get('header') ?? []) {
        const at = h.indexOf(':');
        if (at <= 0) throw new UsageError(`--header '${h}' is not k:v`);
        const k = h.slice(0, at).trim().toLowerCase();
        const v = h.slice(at + 1).trim();
        const prev = headers[k];
        headers[k] = prev === undefined ? v : [...(Array.isArray(prev) ? prev : [prev]), v];
      }
      return httpCommand(p[0]!, {
        method: one('method'), headers, body: one('body'), count: num('count', 1), concurrency: num('concurrency', 1), h2c: flags.has('h2c'), timeoutMs,
      });
    }
    case 'grpc':
      need(2);
      return grpcCommand(p[0]!, p[1] as GrpcKind, { message: one('message'), count: num('count', 1), failCode: num('fail-code', 0), calls: num('calls', 1), timeoutMs });
    case 'ws':
      need(2);
      return wsCommand(p[0]!, p[1]!, timeoutMs);
    case 'tls':
      need(4);
      return tlsCommand(p[0]!, Number(p[1]), p[2]!, p[3]!, timeoutMs);
    case 'slowloris':
      need(3);
      return slowlorisCommand(p[0]!, Number(p[1]), Number(p[2]), timeoutMs);
    case 'bigheader':
      need(2);
      return bigheaderCommand(p[0]!, Number(p[1]), timeoutMs);
    case 'smuggle':
      need(3);
      return smuggleCommand(p[0]!, Number(p[1]), p[2] as SmuggleKind, timeoutMs);
    case 'raw':
      need(3);
      return rawCommand(p[0]!, Number(p[1]), Buffer.from(p[2]!, 'base64').toString('latin1'), timeoutMs);
    case 'noread':
      need(2);
      return noreadCommand(p[0]!, Number(p[1]), timeoutMs);
    default:
      throw new UsageError(`unknown command '${command ?? ''}'`);
  }
}

if (require.main === module) {
  runClient(process.argv.slice(2)).then(
    (result) => process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0)),
    (err: unknown) => {
      if (err instanceof UsageError || (err instanceof Error && /needs a value/.test(err.message))) {
        console.error(`${err.message}\n${USAGE}`);
        process.stdout.write(`${JSON.stringify({ error: 'EUSAGE', message: err.message })}\n`, () => process.exit(2));
        return;
      }
      process.stdout.write(`${JSON.stringify(errorResult(err))}\n`, () => process.exit(0));
    },
  );
}
