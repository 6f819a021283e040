/**
 * Agent restarts drop no connection (issue 15): under continuous load, the agents of both
 * nodes are restarted the way a DaemonSet rolling update with maxSurge does it (a new
 * agent beside the old one, which hands over its listeners and connections and leaves by
 * itself: src/sim/rolling-restart.ts), five times in a row, in eBPF and iptables modes.
 *
 * The load, all from c1 on node1 (src/sim/apps/steady-client.ts), runs through every
 * hand-over:
 *   - keep-alive HTTP/1.1 at 500 req/s to Service web (s1 on node1, b1 on node2: about
 *     half of it crosses nodes through the tunnel);
 *   - one long TCP stream carrying a known byte sequence, echoed by s1;
 *   - one WebSocket to s1, numbered messages echoed in order;
 *   - gRPC bidirectional streams to b1 (the other node), one after another, every
 *     message answered;
 *   - and, from o1 on node2 (outside the mesh), keep-alive HTTP/1.1 at 100 req/s to s1's
 *     pod IP: plain connections on s1's inbound listener, handed over like the outbound ones.
 * What a user relies on: 0 failed requests, 0 connections reset, the TCP stream's bytes
 * complete and in order, every stream intact.
 *
 * Topology: test/fixtures/handover-load/topology.yaml.
 */
import { after, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { GrpcSteadyResult, HttpSteadyResult, TcpSteadyResult, WsSteadyResult } from '../src/sim/apps/steady-client';
import { ROOT, SimFixture, uniqueSimName, type AgentHandle } from '../src/sim/harness';
import { rollingRestart } from '../src/sim/rolling-restart';
import type { SteadyClient } from '../src/sim/steady-load';
import { requireRoot } from './helpers/privileges';

const TOPOLOGY = join(ROOT, 'test', 'fixtures', 'handover-load', 'topology.yaml');
const WEB = '10.96.1.40';
const S_STREAM = '10.96.1.41';
const B_GRPC = '10.96.1.42';
const S1_POD = '10.244.1.31';
const NODES = ['node1', 'node2'] as const;
const RESTARTS = 5;
const RATE = 500;
/** Long enough for a request, a gRPC call or a hand-over in flight to finish on a loaded machine. */
const DRAIN_MS = 15_000;
/** The load's own bound, whatever happens to the test: 500 req/s for at most this long. */
const LOAD_MAX_SECONDS = 600;

interface Loads {
  http: SteadyClient<HttpSteadyResult>;
  tcp: SteadyClient<TcpSteadyResult>;
  ws: SteadyClient<WsSteadyResult>;
  grpc: SteadyClient<GrpcSteadyResult>;
  inbound: SteadyClient<HttpSteadyResult>;
}

function startLoads(sim: SimFixture): Loads {
  const bound = ['--max-seconds', String(LOAD_MAX_SECONDS)];
  return {
    http: sim.steadyClient<HttpSteadyResult>('demo/c1', ['http', `http://${WEB}/`, '--rate', String(RATE), '--connections', '8', ...bound]),
    tcp: sim.steadyClient<TcpSteadyResult>('demo/c1', ['tcp', S_STREAM, '9000', '--rate', String(64 * 1024), ...bound]),
    ws: sim.steadyClient<WsSteadyResult>('demo/c1', ['ws', `ws://${S_STREAM}:8082/`, '--interval', '20', ...bound]),
    grpc: sim.steadyClient<GrpcSteadyResult>('demo/c1', ['grpc', `${B_GRPC}:9090`, '--per-call', '10', '--interval', '20', ...bound]),
    inbound: sim.steadyClient<HttpSteadyResult>('demo/o1', ['http', `http://${S1_POD}:8080/`, '--rate', '100', '--connections', '2', ...bound]),
  };
}

/** Every load made progress: the next restart happens under live traffic, not after a stall. */
async function allFlowing(loads: Loads): Promise<void> {
  await Promise.all([loads.http.advance(RATE / 2), loads.tcp.advance(32 * 1024), loads.ws.advance(10), loads.grpc.advance(2), loads.inbound.advance(20)]);
}

for (const capture of ['ebpf', 'iptables'] as const) {
  describe(`agent hand-over under load, ${capture} capture`, { concurrency: false, timeout: 1_200_000 }, () => {
    let sim: SimFixture | undefined;
    let dir = '';

    after(async () => {
      await sim?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test(`${RESTARTS} rolling restarts of both nodes' agents: no request fails, no connection is reset, every stream stays intact`, async (t: TestContext) => {
      if (!requireRoot(t)) return;
      dir = mkdtempSync(join(tmpdir(), 'nm-handover-'));
      copyFileSync(TOPOLOGY, join(dir, 'topology.yaml'));
      sim = await new SimFixture(uniqueSimName('ho'), dir).up();
      await Promise.all(['s1', 'b1'].map((p) => sim!.startL7App(`demo/${p}`, ['--name', p])));
      const agents: Record<string, AgentHandle> = {};
      const args = ['--capture', capture, '--drain-ms', String(DRAIN_MS)];
      [agents.node1, agents.node2] = await Promise.all(NODES.map((n) => sim!.startAgent(n, args)));
      for (const p of ['c1', 's1']) await agents.node1!.waitPod(`demo/${p}`, 'enrolled', 30_000);
      await agents.node2!.waitPod('demo/b1', 'enrolled', 30_000);
      assert.equal((await agents.node1!.capture()).backend, capture);
      const everyAgent: AgentHandle[] = [agents.node1!, agents.node2!];

      const loads = startLoads(sim);
      await Promise.all(Object.values(loads).map((l) => l.running()));
      await allFlowing(loads);

      // Whatever fails from here, every agent's warnings (old and new) say which hop broke what.
      const warnings = () => {
        for (const a of everyAgent) {
          const lines = a.log.split('\n').filter((l) => /"level":(40|50|60)/.test(l) && !l.includes('no CA')).slice(-15);
          if (lines.length > 0) t.diagnostic(`agent pid ${a.child.pid} (${a.instance}) warnings:\n${lines.join('\n')}`);
        }
      };
      t.after(() => { if (failed) warnings(); });
      let failed = true;
      for (let round = 1; round <= RESTARTS; round++) {
        for (const node of NODES) {
          const r = await rollingRestart(sim, agents[node]!);
          agents[node] = r.agent;
          everyAgent.push(r.agent);
          t.diagnostic(`restart ${round} of ${node}: new agent serving after ${r.readyMs} ms, old agent (pid ${r.oldPid}) gone after ${r.oldExitMs} ms; hand-over ${JSON.stringify(r.handover.new ?? null)}`);
          assert.equal(r.oldExitCode, 0, `the old agent of ${node} (pid ${r.oldPid}) exited with ${r.oldExitCode}; its log:\n${r.agent.log.slice(-1500)}`);
          assert.equal(r.handover.new?.state, 'done', `the new agent of ${node} does not report the hand-over done: ${JSON.stringify(r.handover.new)}`);
          // node1's pools hold keep-alive connections to s1 (c1's requests, o1's on 15006): handed too.
          if (node === 'node1') assert.ok(Number(r.handover.new?.upstreams ?? 0) > 0, `no idle upstream HTTP/1.1 connection handed on ${node}: ${JSON.stringify(r.handover.new)}`);
          await allFlowing(loads);
        }
      }

      const [http, tcp, ws, grpc, inbound] = await Promise.all([loads.http.stop(), loads.tcp.stop(), loads.ws.stop(), loads.grpc.stop(), loads.inbound.stop()]);
      t.diagnostic(`http: ${http.requests} requests, p50 ${http.latencyMs.p50} ms, p99 ${http.latencyMs.p99} ms, ${http.connectionsOpened} connections opened`);
      t.diagnostic(`tcp: ${tcp.sent} bytes sent, ${tcp.received} echoed; ws: ${ws.sent} messages; grpc: ${grpc.calls} calls, ${grpc.sent} messages`);
      t.diagnostic(`inbound http (o1 -> s1 15006): ${inbound.requests} requests, ${inbound.connectionsOpened} connections opened`);

      // Every check is collected before the test fails, so that one broken stream does not hide another.
      const problems: string[] = [];
      const check = (ok: boolean, what: string) => { if (!ok) problems.push(what); };
      const json = (v: unknown) => JSON.stringify(v);
      // HTTP/1.1: every request answered 2xx, no keep-alive connection cut under the client.
      check(http.failed === 0 && json(http.errors) === '{}', `http: ${http.failed} failed requests ${json(http.errors)}, scheduled at ${http.failedAt.slice(0, 10).map((at) => new Date(at).toISOString()).join(', ')}; answers ${json(http.failures)}`);
      check(http.resets === 0, `http: ${http.resets} connections reset`);
      check(json(http.closedByPeer) === '{}', `http: keep-alive connections closed under the client ${json(http.closedByPeer)} (a hand-over carries them over)`);
      check(http.requests >= RATE * 5, `http: only ${http.requests} requests in the run`);
      // The TCP stream: open from start to end, every byte back, in order.
      check(tcp.failed === 0 && tcp.resets === 0 && json(tcp.errors) === '{}', `tcp: errors ${json(tcp.errors)}, ${tcp.resets} resets`);
      check(!tcp.closedEarly, 'tcp: the stream was closed under the client');
      check(tcp.inOrder, `tcp: the bytes differ from the sequence at byte ${tcp.mismatchAt}`);
      check(tcp.received === tcp.sent, `tcp: ${tcp.sent - tcp.received} of ${tcp.sent} bytes missing`);
      // The WebSocket: one connection throughout, every message echoed in order.
      check(ws.failed === 0 && json(ws.errors) === '{}', `ws: errors ${json(ws.errors)}`);
      check(!ws.closedEarly, `ws: closed under the client (${ws.closeCode})`);
      check(ws.inOrder, 'ws: replies out of order');
      check(ws.answered === ws.sent, `ws: ${ws.sent - ws.answered} of ${ws.sent} messages unanswered`);
      check(ws.servedBy === 's1', `ws: served by ${ws.servedBy}`);
      // gRPC: every bidirectional call completed OK, every message answered, across nodes.
      check(grpc.failed === 0 && json(grpc.errors) === '{}', `grpc: ${grpc.failed} of ${grpc.calls} calls failed ${json(grpc.errors)}: ${json(grpc.failures)}`);
      check(grpc.inOrder, 'grpc: replies out of order or not the messages sent');
      check(grpc.answered === grpc.sent, `grpc: ${grpc.sent - grpc.answered} of ${grpc.sent} messages unanswered`);
      check(json(Object.keys(grpc.servedBy)) === '["b1"]', `grpc: served by ${json(grpc.servedBy)}`);
      // Inbound HTTP/1.1 from outside the mesh: every request answered over the same two connections.
      check(inbound.failed === 0 && json(inbound.errors) === '{}', `inbound http: ${inbound.failed} failed requests ${json(inbound.errors)}`);
      check(json(inbound.closedByPeer) === '{}' && inbound.resets === 0, `inbound http: keep-alive connections closed under the client ${json(inbound.closedByPeer)}, ${inbound.resets} resets`);
      check(inbound.connectionsOpened === 2, `inbound http: ${inbound.connectionsOpened} connections opened for 2 (a hand-over carries them over)`);
      assert.deepEqual(problems, [], 'what the restarts broke');
      failed = false;

      // The HTTP load crossed nodes as well as staying on node1 (both servers counted it).
      const counts = await Promise.all(['s1', 'b1'].map(async (p) => (await sim!.l7Client('demo/c1', ['http', `http://${p === 's1' ? '10.244.1.31' : '10.244.2.11'}:8080/count`])).json as { total: number }));
      assert.ok(counts.every((c) => c.total > RATE), `requests served by s1 and b1: ${counts.map((c) => c.total).join(', ')}`);
    });
  });
}
