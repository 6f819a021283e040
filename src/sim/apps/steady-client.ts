/**
 * Long-running clients that account for every request, byte and message, run inside
 * simulated pods while agents are restarted under them (test/handover-load.test.ts,
 * `npm run bench:handover`). Each runs until its stdin ends (or --max-seconds passes),
 * then finishes what is in flight and prints its result.
 *
 *   http URL [--rate R] [--connections C] [--samples]
 *        keep-alive HTTP/1.1 GETs, open loop at R req/s (default 500) over an undici Pool
 *        of C connections (default 8); latency from the scheduled time. --samples adds
 *        every request's [scheduled epoch ms, latency ms] (for the latency around a switch).
 *   tcp HOST PORT [--rate BYTES_PER_S]
 *        one TCP connection to an echo port that first sends one header line (l7-app's tcp
 *        port, tcp-echo); writes a known byte sequence and checks the echo byte by byte.
 *   ws URL [--interval MS]
 *        one WebSocket to l7-app's ws port; a numbered message every MS ms (default 20),
 *        each reply ("NAME: m<i>") checked in order.
 *   grpc HOST:PORT [--per-call K] [--interval MS]
 *        gRPC BidiStream calls one after another, each K messages (default 10) sent one at
 *        a time, MS ms apart (default 20), every reply checked; a call in progress when
 *        stdin ends is finished.
 *   hold HOST PORT [--connections N]
 *        N TCP connections to an echo port held open; each stdin line `check` sends a token
 *        on every connection and prints {"check": {ok, failed, errors}}.
 *
 * Every mode takes --max-seconds S (default 300: the bound when nobody ends stdin) and
 * --timeout MS (default 10000: per request, per echo, per message). Output, one JSON object
 * per line: {"phase":"running"} once the first exchange succeeded, {"progress":{…}} every
 * second, and last {"result":{…}}. `failed` counts failed requests / calls; `resets`
 * counts connections the peer reset (ECONNRESET, EPIPE) or closed under a live exchange.
 * Exits 0 whenever it printed a result, 2 on a usage error.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import * as hdr from 'hdr-histogram-js';
import { Pool } from 'undici';
import WebSocket from 'ws';
import { loadEchoService, type EchoReply, type EchoRequest } from './l7-app';
import { OpenLoopSchedule, failureCode, summarize, type LatencySummary } from './load-generator';

export const MODES = ['http', 'tcp', 'ws', 'grpc', 'hold'] as const;
export type SteadyMode = (typeof MODES)[number];

export interface SteadyOptions {
  mode: SteadyMode;
  /** URL (http, ws), HOST:PORT (grpc) or HOST (tcp, hold). */
  target: string;
  port: number;
  rate: number;
  connections: number;
  samples: boolean;
  intervalMs: number;
  perCall: number;
  maxSeconds: number;
  timeoutMs: number;
}

/** What every mode reports (progress and result); modes add their own fields. */
export interface SteadyCounts {
  /** Requests answered 2xx / bytes echoed / messages answered / calls completed OK. */
  ok: number;
  failed: number;
  resets: number;
  errors: Record<string, number>;
}

export interface HttpSteadyResult extends SteadyCounts {
  mode: 'http';
  requests: number;
  latencyMs: LatencySummary;
  /** Connections undici opened, and how the ones closed before the end were closed. */
  connectionsOpened: number;
  closedByPeer: Record<string, number>;
  /** With --samples: [scheduled epoch ms, latency ms] of every successful request. */
  samples?: Array<[number, number]>;
  /** Scheduled epoch ms of each failed request (which hand-over it fell in). */
  failedAt: number[];
  /** The first answers other than 2xx: when, the status, the body's start. */
  failures: Array<{ at: string; status: number; flags: string; body: string }>;
}

export interface TcpSteadyResult extends SteadyCounts {
  mode: 'tcp';
  sent: number;
  received: number;
  /** False once one echoed byte differed from the sequence. */
  inOrder: boolean;
  mismatchAt?: number;
  /** True when the connection ended (by the peer) before the client closed it. */
  closedEarly: boolean;
}

export interface WsSteadyResult extends SteadyCounts {
  mode: 'ws';
  sent: number;
  answered: number;
  inOrder: boolean;
  servedBy?: string;
  closeCode?: number;
  closedEarly: boolean;
}

export interface GrpcSteadyResult extends SteadyCounts {
  mode: 'grpc';
  calls: number;
  sent: number;
  answered: number;
  inOrder: boolean;
  servedBy: Record<string, number>;
  /** The first failed calls: when, the status, grpc-js's details, how many replies had come. */
  failures: Array<{ at: string; status: string; details: string; message: number }>;
}

export interface HoldSteadyResult extends SteadyCounts {
  mode: 'hold';
  connections: number;
  open: number;
}

export type SteadyResult = HttpSteadyResult | TcpSteadyResult | WsSteadyResult | GrpcSteadyResult | HoldSteadyResult;

const DEFAULTS = { rate: 500, connections: 8, intervalMs: 20, perCall: 10, maxSeconds: 300, timeoutMs: 10_000 };

export function parseSteadyArgs(argv: string[]): SteadyOptions {
  const [mode, target, ...rest] = argv;
  if (!(MODES as readonly string[]).includes(mode ?? '')) throw new Error(`mode must be one of ${MODES.join(', ')}`);
  if (!target) throw new Error(`${mode} needs a target`);
  let port = 0;
  if (mode === 'tcp' || mode === 'hold') {
    port = Number(rest.shift());
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${mode} needs HOST PORT`);
  }
  const o: SteadyOptions = { mode: mode as SteadyMode, target, port, samples: false, ...DEFAULTS };
  // tcp's --rate is bytes per second: a different default from http's requests per second.
  if (mode === 'tcp') o.rate = 64 * 1024;
  if (mode === 'hold') o.connections = 10;
  for (let i = 0; i < rest.length; i++) {
    const flag = rest[i]!;
    if (flag === '--samples') { o.samples = true; continue; }
    const value = Number(rest[++i]);
    if (!Number.isFinite(value) || value <= 0) throw new Error(`bad value '${rest[i] ?? ''}' for ${flag}`);
    switch (flag) {
      case '--rate': o.rate = value; break;
      case '--connections': o.connections = Math.floor(value); break;
      case '--interval': o.intervalMs = value; break;
      case '--per-call': o.perCall = Math.floor(value); break;
      case '--max-seconds': o.maxSeconds = value; break;
      case '--timeout': o.timeoutMs = value; break;
      default: throw new Error(`unknown flag '${flag}'`);
    }
  }
  return o;
}

/** Byte `i` of the TCP stream: depends on its position, so a lost, doubled or reordered chunk shows. */
export function sequenceByte(i: number): number {
  return Math.imul(i ^ (i >>> 13), 0x9e3779b1) >>> 24;
}

export function sequenceChunk(offset: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  for (let j = 0; j < length; j++) b[j] = sequenceByte(offset + j);
  return b;
}

/** Wall-clock milliseconds with performance.now()'s resolution (comparable across processes on one host). */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/** A connection error that means the peer cut it (as opposed to a timeout or a refusal). */
export function isReset(code: string): boolean {
  return code === 'ECONNRESET' || code === 'EPIPE' || code === 'ECONNABORTED' || code === 'UND_ERR_SOCKET';
}

/** The controls every mode gets: stop (stdin ended or time is up), progress, phase. */
export interface Control {
  readonly stopped: Promise<void>;
  readonly isStopped: () => boolean;
  running(): void;
}

function count(errors: Record<string, number>, code: string): void {
  errors[code] = (errors[code] ?? 0) + 1;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// --------------------------------------------------------------------------------- http

export async function runHttp(o: SteadyOptions, ctl: Control, counts: SteadyCounts): Promise<HttpSteadyResult> {
  const url = new URL(o.target);
  const pool = new Pool(url.origin, {
    connections: o.connections,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    keepAliveMaxTimeout: 60_000,
    headersTimeout: o.timeoutMs,
    bodyTimeout: o.timeoutMs,
  });
  let closing = false;
  let connectionsOpened = 0;
  const closedByPeer: Record<string, number> = {};
  pool.on('connect', () => { connectionsOpened += 1; });
  pool.on('disconnect', (_origin, _targets, err) => {
    if (closing) return;
    const code = failureCode(err);
    count(closedByPeer, code);
    if (code === 'ECONNRESET' || code === 'EPIPE') counts.resets += 1;
  });
  const histogram = hdr.build({ bitBucketSize: 32, numberOfSignificantValueDigits: 3, useWebAssembly: false });
  const samples: Array<[number, number]> = [];
  const failedAt: number[] = [];
  const failures: HttpSteadyResult['failures'] = [];
  const path = `${url.pathname}${url.search}`;
  const offset = epochMs() - performance.now();
  const send = async (scheduled: number) => {
    let failure: string | undefined;
    try {
      const res = await pool.request({ path, method: 'GET', signal: AbortSignal.timeout(o.timeoutMs) });
      const body = Buffer.from(await res.body.arrayBuffer());
      if (res.statusCode < 200 || res.statusCode > 299) {
        failure = `HTTP ${res.statusCode}`;
        // What the proxy said of it (its error body, its response flags header when it set one).
        if (failures.length < 20) failures.push({ at: new Date().toISOString(), status: res.statusCode, flags: String(res.headers['x-nodemesh-flags'] ?? ''), body: body.toString('utf8', 0, 200) });
      }
    } catch (err) {
      failure = failureCode(err);
    }
    const latency = performance.now() - scheduled;
    if (failure === undefined) {
      counts.ok += 1;
      histogram.recordValue(Math.max(1, Math.round(latency * 1000)));
      if (o.samples) samples.push([Math.round((offset + scheduled) * 10) / 10, Math.round(latency * 1000) / 1000]);
      if (counts.ok === 1) ctl.running();
    } else {
      counts.failed += 1;
      count(counts.errors, failure);
      failedAt.push(Math.round(offset + scheduled));
    }
  };
  const start = performance.now() + 5;
  const schedule = new OpenLoopSchedule(start, o.rate, start + o.maxSeconds * 1000);
  void ctl.stopped.then(() => schedule.stop(performance.now()));
  const inFlight = new Set<Promise<void>>();
  await new Promise<void>((sent) => {
    const tick = () => {
      for (const t of schedule.due(performance.now())) {
        const p = send(t);
        inFlight.add(p);
        void p.finally(() => inFlight.delete(p));
      }
      if (schedule.done) return sent();
      setTimeout(tick, Math.max(0, Math.min(50, schedule.nextAt() - performance.now())));
    };
    setTimeout(tick, 5);
  });
  await Promise.all([...inFlight]);
  closing = true;
  await pool.close().catch(() => undefined);
  return {
    mode: 'http',
    ...counts,
    requests: counts.ok + counts.failed,
    latencyMs: summarize(histogram),
    connectionsOpened,
    closedByPeer,
    failedAt,
    failures,
    ...(o.samples ? { samples } : {}),
  };
}

// ---------------------------------------------------------------------------------- tcp

/** Resolves with a connected socket whose echo server's header line has been read. */
function connectEcho(host: string, port: number, timeoutMs: number): Promise<{ socket: Socket; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host, port, noDelay: true });
    let head = Buffer.alloc(0);
    const timer = setTimeout(() => { socket.destroy(); reject(Object.assign(new Error('no header line from the echo server'), { code: 'ETIMEDOUT' })); }, timeoutMs);
    const onData = (d: Buffer) => {
      head = Buffer.concat([head, d]);
      const nl = head.indexOf(10);
      if (nl < 0) return;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.pause();
      resolve({ socket, rest: head.subarray(nl + 1) });
    };
    const onError = (err: Error) => { clearTimeout(timer); reject(err); };
    socket.on('data', onData);
    socket.once('error', onError);
  });
}

export async function runTcp(o: SteadyOptions, ctl: Control, counts: SteadyCounts): Promise<TcpSteadyResult> {
  const result: TcpSteadyResult = { mode: 'tcp', ...counts, sent: 0, received: 0, inOrder: true, closedEarly: false };
  const fail = (code: string) => {
    count(counts.errors, code);
    if (isReset(code)) counts.resets += 1;
    counts.failed += 1;
  };
  let socket: Socket;
  let rest: Buffer;
  try {
    ({ socket, rest } = await connectEcho(o.target, o.port, o.timeoutMs));
  } catch (err) {
    fail(failureCode(err));
    return { ...result, ...counts };
  }
  let ended = false;
  let errored = false;
  let lastProgress = performance.now();
  const check = (d: Buffer) => {
    lastProgress = performance.now();
    for (let j = 0; j < d.length; j++) {
      if (result.inOrder && d[j] !== sequenceByte(result.received + j)) {
        result.inOrder = false;
        result.mismatchAt = result.received + j;
      }
    }
    result.received += d.length;
    counts.ok = result.received;
    if (result.received > 0 && result.received === d.length) ctl.running();
  };
  socket.on('data', check);
  socket.on('end', () => { ended = true; });
  socket.on('error', (err) => { errored = true; fail(failureCode(err)); });
  if (rest.length) check(rest);
  socket.resume();
  // Writer: the rate in 10 ms slices; back-pressure waits for 'drain' (it is not a failure).
  const slice = Math.max(1, Math.round(o.rate / 100));
  while (!ctl.isStopped() && !ended && !errored) {
    const ok = socket.write(sequenceChunk(result.sent, slice));
    result.sent += slice;
    if (!ok) await new Promise<void>((r) => { socket.once('drain', r); socket.once('close', r); });
    await Promise.race([sleep(10), ctl.stopped]);
    if (performance.now() - lastProgress > o.timeoutMs && result.received < result.sent) {
      fail('ETIMEDOUT');
      break;
    }
  }
  // Everything sent must come back before the client closes.
  while (!ended && !errored && result.received < result.sent && performance.now() - lastProgress < o.timeoutMs) await sleep(10);
  if (!ended && !errored && result.received < result.sent) fail('ETIMEDOUT');
  if (ended && !errored && !ctl.isStopped()) {
    result.closedEarly = true;
    fail('closed by peer');
  }
  if (!socket.destroyed) {
    socket.end();
    await Promise.race([new Promise((r) => socket.once('close', r)), sleep(o.timeoutMs)]);
    socket.destroy();
  }
  return { ...result, ...counts };
}

// ----------------------------------------------------------------------------------- ws

export async function runWs(o: SteadyOptions, ctl: Control, counts: SteadyCounts): Promise<WsSteadyResult> {
  const result: WsSteadyResult = { mode: 'ws', ...counts, sent: 0, answered: 0, inOrder: true, closedEarly: false };
  const fail = (code: string) => {
    count(counts.errors, code);
    if (isReset(code)) counts.resets += 1;
    counts.failed += 1;
  };
  const ws = new WebSocket(o.target, { handshakeTimeout: o.timeoutMs });
  let closed = false;
  let lastAnswer = performance.now();
  const closedPromise = new Promise<void>((r) => ws.once('close', (code: number) => { closed = true; result.closeCode = code; r(); }));
  ws.on('error', (err: Error) => fail(failureCode(err)));
  ws.on('message', (data: WebSocket.RawData) => {
    const text = Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8');
    const m = /^(.*): m(\d+)$/.exec(text);
    if (!m || Number(m[2]) !== result.answered) result.inOrder = false;
    if (m) result.servedBy ??= m[1];
    result.answered += 1;
    counts.ok = result.answered;
    lastAnswer = performance.now();
    if (result.answered === 1) ctl.running();
  });
  const opened = await Promise.race([
    new Promise<boolean>((r) => ws.once('open', () => r(true))),
    closedPromise.then(() => false),
  ]);
  if (!opened) return { ...result, ...counts };
  while (!ctl.isStopped() && !closed) {
    ws.send(`m${result.sent}`);
    result.sent += 1;
    await Promise.race([sleep(o.intervalMs), ctl.stopped]);
    if (result.answered < result.sent && performance.now() - lastAnswer > o.timeoutMs) {
      fail('ETIMEDOUT');
      break;
    }
  }
  while (!closed && result.answered < result.sent && performance.now() - lastAnswer < o.timeoutMs) await sleep(10);
  if (closed && !ctl.isStopped()) {
    result.closedEarly = true;
    fail(`closed by peer (${result.closeCode ?? '?'})`);
  } else if (result.answered < result.sent) {
    fail('ETIMEDOUT');
  }
  if (!closed) {
    ws.close(1000, 'done');
    await Promise.race([closedPromise, sleep(o.timeoutMs)]);
    ws.terminate();
  }
  return { ...result, ...counts };
}

// --------------------------------------------------------------------------------- grpc

type BidiCall = grpc.ClientDuplexStream<EchoRequest, EchoReply>;
type EchoClient = grpc.Client & { BidiStream(options: grpc.CallOptions): BidiCall };

/** One BidiStream call: `perCall` messages, each sent once the previous one was answered. */
async function oneBidiCall(client: EchoClient, o: SteadyOptions, prefix: string, result: GrpcSteadyResult): Promise<string | undefined> {
  const call = client.BidiStream({ deadline: new Date(Date.now() + o.timeoutMs + o.perCall * (o.intervalMs + o.timeoutMs)) });
  const replies: EchoReply[] = [];
  let wake: (() => void) | undefined;
  let status: string | undefined;
  let ended = false;
  call.on('data', (r: EchoReply) => { replies.push(r); wake?.(); });
  call.on('error', (err: grpc.ServiceError) => {
    status = `grpc ${grpc.status[err.code] ?? err.code}`;
    // What grpc-js saw (an RST_STREAM code, a dropped connection, the proxy's trailers) and
    // when: the key stays the status, the details go beside it for the test's message.
    if (result.failures.length < 20) result.failures.push({ at: new Date().toISOString(), status, details: String(err.details ?? err.message).slice(0, 200), message: replies.length });
    ended = true;
    wake?.();
  });
  call.on('end', () => { ended = true; wake?.(); });
  const waitFor = async (pred: () => boolean) => {
    const until = performance.now() + o.timeoutMs;
    while (!pred() && performance.now() < until) await new Promise<void>((r) => { wake = r; setTimeout(r, 50); });
    return pred();
  };
  for (let i = 0; i < o.perCall; i++) {
    const message = `${prefix}-${i}`;
    call.write({ message, count: 0, fail_code: 0 });
    result.sent += 1;
    if (!(await waitFor(() => replies.length > i || ended))) return 'ETIMEDOUT';
    if (replies.length <= i) return status ?? 'ended early';
    const r = replies[i]!;
    if (r.message !== message || r.index !== i) result.inOrder = false;
    result.answered += 1;
    if (i === 0) result.servedBy[r.served_by] = (result.servedBy[r.served_by] ?? 0) + 1;
    if (i < o.perCall - 1) await sleep(o.intervalMs);
  }
  call.end();
  if (!(await waitFor(() => ended))) return 'ETIMEDOUT';
  return status;
}

export async function runGrpc(o: SteadyOptions, ctl: Control, counts: SteadyCounts): Promise<GrpcSteadyResult> {
  const result: GrpcSteadyResult = { mode: 'grpc', ...counts, calls: 0, sent: 0, answered: 0, inOrder: true, servedBy: {}, failures: [] };
  const Echo = loadEchoService();
  const client = new Echo(o.target, grpc.credentials.createInsecure(), { 'grpc.max_reconnect_backoff_ms': 1000 }) as unknown as EchoClient;
  try {
    while (!ctl.isStopped()) {
      const failure = await oneBidiCall(client, o, `c${result.calls}`, result);
      result.calls += 1;
      if (failure) {
        counts.failed += 1;
        count(counts.errors, failure);
        if (/UNAVAILABLE|INTERNAL|CANCELLED/.test(failure)) counts.resets += 1;
      } else {
        counts.ok += 1;
        if (counts.ok === 1) ctl.running();
      }
    }
  } finally {
    client.close();
  }
  return { ...result, ...counts };
}

// --------------------------------------------------------------------------------- hold

/** Sends a token on every held connection; counts those whose echo came back whole. */
async function checkAll(sockets: Socket[], round: number, timeoutMs: number): Promise<{ ok: number; failed: number; errors: Record<string, number> }> {
  const errors: Record<string, number> = {};
  const outcomes = await Promise.all(sockets.map((s, i) => new Promise<boolean>((resolve) => {
    if (s.destroyed) { count(errors, 'closed'); return resolve(false); }
    const token = `check ${round} ${i}\n`;
    let got = '';
    const timer = setTimeout(() => { done(false, 'ETIMEDOUT'); }, timeoutMs);
    const onData = (d: Buffer) => { got += d.toString('utf8'); if (got.length >= token.length) done(got === token, got === token ? undefined : 'mismatch'); };
    const onClose = () => done(false, 'closed');
    function done(ok: boolean, code?: string) {
      clearTimeout(timer);
      s.off('data', onData);
      s.off('close', onClose);
      if (code) count(errors, code);
      resolve(ok);
    }
    s.on('data', onData);
    s.once('close', onClose);
    s.write(token);
  })));
  const ok = outcomes.filter(Boolean).length;
  return { ok, failed: outcomes.length - ok, errors };
}

export async function runHold(o: SteadyOptions, ctl: Control, counts: SteadyCounts, lines: AsyncIterable<string>, print: (v: unknown) => void): Promise<HoldSteadyResult> {
  const sockets: Socket[] = [];
  const connectErrors: Record<string, number> = {};
  // In batches: a thousand connects at once would trip the proxy's and the app's accept backlogs.
  for (let i = 0; i < o.connections; i += 50) {
    const batch = await Promise.allSettled(Array.from({ length: Math.min(50, o.connections - i) }, () => connectEcho(o.target, o.port, o.timeoutMs)));
    for (const b of batch) {
      if (b.status === 'fulfilled') {
        const s = b.value.socket;
        s.on('error', (err) => { const code = failureCode(err); count(counts.errors, code); if (isReset(code)) counts.resets += 1; });
        s.resume();
        sockets.push(s);
      } else {
        count(connectErrors, failureCode(b.reason));
      }
    }
  }
  const first = await checkAll(sockets, 0, o.timeoutMs);
  counts.ok = first.ok;
  counts.failed = first.failed + (o.connections - sockets.length);
  for (const [k, v] of Object.entries({ ...connectErrors, ...first.errors })) counts.errors[k] = (counts.errors[k] ?? 0) + v;
  if (first.ok > 0) ctl.running();
  let round = 1;
  const reading = (async () => {
    for await (const line of lines) {
      if (line.trim() !== 'check') continue;
      const c = await checkAll(sockets, round++, o.timeoutMs);
      counts.ok = c.ok;
      counts.failed += c.failed;
      for (const [k, v] of Object.entries(c.errors)) counts.errors[k] = (counts.errors[k] ?? 0) + v;
      print({ check: c });
    }
  })();
  await ctl.stopped;
  await reading.catch(() => undefined);
  const open = sockets.filter((s) => !s.destroyed).length;
  for (const s of sockets) s.destroy();
  return { mode: 'hold', ...counts, connections: o.connections, open };
}

// --------------------------------------------------------------------------------- main

async function* stdinLines(): AsyncIterable<string> {
  process.stdin.setEncoding('utf8');
  let buffered = '';
  for await (const chunk of process.stdin) {
    buffered += chunk as string;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      yield buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
    }
  }
}

async function main(): Promise<void> {
  let o: SteadyOptions;
  try {
    o = parseSteadyArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`${(err as Error).message}\nusage: steady-client http URL | tcp HOST PORT | ws URL | grpc HOST:PORT | hold HOST PORT  [--rate R] [--connections C] [--interval MS] [--per-call K] [--max-seconds S] [--timeout MS] [--samples]`);
    process.exit(2);
  }
  const print = (v: unknown) => process.stdout.write(`${JSON.stringify(v)}\n`);
  let stop!: () => void;
  let isStopped = false;
  const stopped = new Promise<void>((r) => { stop = () => { isStopped = true; r(); }; });
  const maxTimer = setTimeout(stop, o.maxSeconds * 1000);
  let isRunning = false;
  const ctl: Control = { stopped, isStopped: () => isStopped, running: () => { if (!isRunning) { isRunning = true; print({ phase: 'running' }); } } };
  const counts: SteadyCounts = { ok: 0, failed: 0, resets: 0, errors: {} };
  const progress = setInterval(() => print({ progress: counts }), 1000);
  const lines = stdinLines();
  let run: Promise<SteadyResult>;
  if (o.mode === 'hold') {
    run = runHold(o, ctl, counts, lines, print);
    process.stdin.once('end', stop);
  } else {
    void (async () => { for await (const _ of lines) { /* only the end matters */ } stop(); })();
    run = o.mode === 'http' ? runHttp(o, ctl, counts) : o.mode === 'tcp' ? runTcp(o, ctl, counts) : o.mode === 'ws' ? runWs(o, ctl, counts) : runGrpc(o, ctl, counts);
  }
  // The bound when nobody ends stdin: the run, then the time its last exchange may take.
  const hard = setTimeout(() => {
    print({ error: 'ETIMEDOUT', message: `the run did not finish within ${o.maxSeconds} s + ${3 * o.timeoutMs} ms` });
    process.exit(1);
  }, o.maxSeconds * 1000 + 3 * o.timeoutMs);
  const result = await run;
  clearTimeout(maxTimer);
  clearTimeout(hard);
  clearInterval(progress);
  print({ result });
  process.exit(0);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.log(JSON.stringify({ error: failureCode(err), message: err instanceof Error ? err.message : String(err) }));
    process.exit(1);
  });
}
