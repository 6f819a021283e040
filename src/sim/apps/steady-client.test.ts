import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { startApp } from './l7-app';
import { parseSteadyArgs, runGrpc, runHold, runHttp, runTcp, runWs, sequenceByte, sequenceChunk, type Control, type SteadyCounts, type SteadyOptions } from './steady-client';

/** A Control that stops after `ms` (what the end of stdin does in the process). */
function stopAfter(ms: number): Control & { wasRunning: () => boolean } {
  let stopped = false;
  let running = false;
  const p = new Promise<void>((r) => setTimeout(() => { stopped = true; r(); }, ms));
  return { stopped: p, isStopped: () => stopped, running: () => { running = true; }, wasRunning: () => running };
}

const counts = (): SteadyCounts => ({ ok: 0, failed: 0, resets: 0, errors: {} });
const opts = (o: Partial<SteadyOptions> & Pick<SteadyOptions, 'mode' | 'target'>): SteadyOptions => ({
  port: 0, rate: 200, connections: 2, samples: false, intervalMs: 10, perCall: 3, maxSeconds: 30, timeoutMs: 2000, ...o,
});

async function listen(handler: (s: Socket) => void): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const srv = createServer((s) => { sockets.add(s); s.on('error', () => undefined); handler(s); });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return {
    port: (srv.address() as { port: number }).port,
    close: async () => { for (const s of sockets) s.destroy(); srv.close(); await once(srv, 'close'); },
  };
}

test('parseSteadyArgs: modes, targets, per-mode defaults, bad flags', () => {
  assert.deepEqual({ ...parseSteadyArgs(['http', 'http://a/', '--rate', '50', '--samples']) }, {
    mode: 'http', target: 'http://a/', port: 0, rate: 50, connections: 8, samples: true, intervalMs: 20, perCall: 10, maxSeconds: 300, timeoutMs: 10_000,
  });
  assert.equal(parseSteadyArgs(['tcp', 'h', '9000']).rate, 64 * 1024);
  assert.equal(parseSteadyArgs(['hold', 'h', '9000', '--connections', '1000']).connections, 1000);
  assert.throws(() => parseSteadyArgs(['tcp', 'h']), /HOST PORT/);
  assert.throws(() => parseSteadyArgs(['udp', 'h']), /mode must be/);
  assert.throws(() => parseSteadyArgs(['http', 'http://a/', '--bogus', '1']), /unknown flag/);
  assert.throws(() => parseSteadyArgs(['http', 'http://a/', '--rate', '-1']), /bad value/);
});

test('the TCP sequence depends on the position: a shifted or repeated chunk does not match', () => {
  const a = sequenceChunk(0, 4096);
  assert.equal(a[100], sequenceByte(100));
  assert.notDeepEqual(sequenceChunk(1024, 1024), a.subarray(0, 1024));
  assert.notDeepEqual(sequenceChunk(1, 1024), a.subarray(0, 1024));
});

test('every mode against the L7 test app: all answered, in order, nothing failed', async () => {
  const app = await startApp({ name: 'a1', ports: { http: 0, ws: 0, grpc: 0, tcp: 0 } });
  try {
    const [http, tcp, ws, grpc, hold] = await Promise.all([
      runHttp(opts({ mode: 'http', target: `http://127.0.0.1:${app.ports.http}/`, samples: true }), stopAfter(500), counts()),
      runTcp(opts({ mode: 'tcp', target: '127.0.0.1', port: app.ports.tcp!, rate: 200_000 }), stopAfter(500), counts()),
      runWs(opts({ mode: 'ws', target: `ws://127.0.0.1:${app.ports.ws}/` }), stopAfter(500), counts()),
      runGrpc(opts({ mode: 'grpc', target: `127.0.0.1:${app.ports.grpc}` }), stopAfter(500), counts()),
      runHold(opts({ mode: 'hold', target: '127.0.0.1', port: app.ports.tcp!, connections: 60 }), stopAfter(300), counts(), (async function* () { /* no lines */ })(), () => undefined),
    ]);
    assert.equal(http.failed, 0, JSON.stringify(http.errors));
    assert.ok(http.ok >= 50, `${http.ok} requests answered`);
    assert.equal(http.samples?.length, http.ok);
    assert.ok(Math.abs(http.samples![0]![0] - Date.now()) < 10_000, 'samples carry wall-clock times');
    assert.deepEqual(http.closedByPeer, {});
    assert.equal(tcp.failed, 0, JSON.stringify(tcp.errors));
    assert.ok(tcp.sent > 10_000 && tcp.received === tcp.sent && tcp.inOrder, JSON.stringify(tcp));
    assert.equal(ws.failed, 0, JSON.stringify(ws.errors));
    assert.ok(ws.sent > 5 && ws.answered === ws.sent && ws.inOrder && ws.servedBy === 'a1', JSON.stringify(ws));
    assert.equal(grpc.failed, 0, JSON.stringify(grpc.errors));
    assert.ok(grpc.calls >= 2 && grpc.answered === grpc.sent && grpc.inOrder, JSON.stringify(grpc));
    assert.deepEqual(grpc.servedBy, { a1: grpc.calls });
    assert.equal(hold.ok, 60, JSON.stringify(hold));
    assert.equal(hold.open, 60);
  } finally {
    await app.close();
  }
});

test('a TCP echo that changes one byte is caught; a reset counts as a reset', async () => {
  let n = 0;
  const corrupt = await listen((s) => {
    s.write('header\n');
    s.on('data', (d: Buffer) => {
      const copy = Buffer.from(d);
      if (n <= 5000 && n + copy.length > 5000) copy[5000 - n] ^= 0xff;
      n += copy.length;
      s.write(copy);
    });
  });
  const reset = await listen((s) => {
    s.write('header\n');
    s.once('data', () => s.resetAndDestroy());
  });
  try {
    const bad = await runTcp(opts({ mode: 'tcp', target: '127.0.0.1', port: corrupt.port, rate: 100_000 }), stopAfter(300), counts());
    assert.equal(bad.inOrder, false);
    assert.equal(bad.mismatchAt, 5000);
    const cut = await runTcp(opts({ mode: 'tcp', target: '127.0.0.1', port: reset.port, rate: 100_000 }), stopAfter(300), counts());
    assert.equal(cut.resets, 1, JSON.stringify(cut));
    assert.ok(cut.failed >= 1);
  } finally {
    await corrupt.close();
    await reset.close();
  }
});

test('HTTP: a server that resets connections gives failed requests and counted resets', async () => {
  const reset = await listen((s) => s.once('data', () => s.resetAndDestroy()));
  try {
    const r = await runHttp(opts({ mode: 'http', target: `http://127.0.0.1:${reset.port}/`, rate: 50 }), stopAfter(300), counts());
    assert.equal(r.ok, 0);
    assert.ok(r.failed >= 5, JSON.stringify(r));
    assert.ok(r.resets >= 1, JSON.stringify(r));
    assert.equal(r.failedAt.length, r.failed);
  } finally {
    await reset.close();
  }
});
