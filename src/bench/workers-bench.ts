/**
 * npm run bench:workers — what a second proxy process accepting on the same listeners
 * buys (issue 16: "when one core saturates, the agent can use the others, for example
 * workers sharing the listeners with SO_REUSEPORT: measure what it buys").
 *
 * Two processes accepting on one listening socket is what workers sharing a listener
 * amount to in the kernel (SO_REUSEPORT would split the accept queue; one shared queue
 * is the same sharing without a new socket per worker). The agent already does exactly
 * this for a moment during a hand-over: the new agent accepts on the old one's
 * listeners (the same kernel sockets, eBPF sockhash entries included) while the old one
 * still accepts, until the new one says `listening`. The hand-over's test hook
 * (NODEMESH_HANDOVER_PAUSE_AT=after-listeners) holds it there; so this measures, on the
 * bench topology of bench:proxy (src/bench/topology.ts: client c1 ambient on node1,
 * server s1 on node1, s2 on node2, agent `--capture ebpf`), closed-loop keep-alive
 * HTTP/1.1 with 1 KB bodies, three phases in one run:
 *
 *   1 worker    the agent alone;
 *   2 workers   a second agent paused at after-listeners: both accept, both proxy;
 *   1 worker    the second one SIGKILLed (the first never stopped accepting), again,
 *               for the drift of the machine.
 *
 * Per phase: requests per second, p50/p99, each agent's CPU cores and requests, the
 * machine's busy cores. Nothing here is a pass/fail test.
 *
 * Flags: --duration S (5), --warmup S (1), --connections C (16), --placement same|cross (same).
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { adminGet } from '../admin/admin-client';
import { pidSocketPath } from '../admin/admin-server';
import type { HandoverStatus } from '../runtime/handover/status';
import { SimFixture, uniqueSimName, waitFor } from '../sim/harness';
import { withDeadline } from '../util/deadline';
import { runBuiltinLoad } from './load';
import { machineBusyS, processCpuS } from './procfs';
import { sumMetric } from './runner';
import { PROXY_BENCH_LAYOUT, proxyBenchTopology } from './topology';

const CLIENT = PROXY_BENCH_LAYOUT.client.pod;
const AGENT_ARGS = ['--capture', 'ebpf'];
/** How long the second agent may stay paused: longer than the phase it serves in. */
const PAUSE_MS = 120_000;

interface Phase {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  failures: number;
  /** Per agent: CPU cores busy in the window, requests it counted. */
  agents: Array<{ pid: number; cores: number; requests: number }>;
  machineCores: number;
}

async function requestsOf(socket: string): Promise<number> {
  return sumMetric(await adminGet<string>(socket, '/metrics', 10_000), 'istio_requests_total');
}

async function measure(sim: SimFixture, name: string, agents: Array<{ pid: number; socket: string }>, url: string, o: { duration: number; warmup: number; connections: number }): Promise<Phase> {
  const before = await Promise.all(agents.map((a) => requestsOf(a.socket)));
  let start: { at: number; cpu: number[]; machine: number } | undefined;
  let end: typeof start;
  const sample = () => ({ at: performance.now(), cpu: agents.map((a) => processCpuS(a.pid)), machine: machineBusyS() });
  const result = await runBuiltinLoad(sim.state, CLIENT, ['--url', url, '--rate', '0', '--connections', String(o.connections), '--duration', String(o.duration), '--warmup', String(o.warmup), '--body-bytes', '1024', '--timeout', '10000'], (edge) => {
    if (edge === 'start') start = sample();
    else end = sample();
  }, (o.duration + o.warmup) * 1000 + 60_000);
  const after = await Promise.all(agents.map((a) => requestsOf(a.socket)));
  const wall = (end!.at - start!.at) / 1000;
  const failures = Object.values(result.statuses).reduce((a, b) => a + b, 0) + Object.values(result.errors).reduce((a, b) => a + b, 0);
  return {
    name,
    rps: Math.round(result.requests / result.windowS),
    p50: result.latencyMs.p50,
    p99: result.latencyMs.p99,
    failures,
    agents: agents.map((a, i) => ({ pid: a.pid, cores: Math.round(((end!.cpu[i]! - start!.cpu[i]!) / wall) * 100) / 100, requests: after[i]! - before[i]! })),
    machineCores: Math.round(((end!.machine - start!.machine) / wall) * 100) / 100,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '1' },
      connections: { type: 'string', default: '16' },
      placement: { type: 'string', default: 'same' },
    },
  });
  const o = { duration: Number(values.duration), warmup: Number(values.warmup), connections: Number(values.connections) };
  for (const [flag, v, min] of [['duration', o.duration, 0.5], ['warmup', o.warmup, 0], ['connections', o.connections, 1]] as const) {
    if (!Number.isFinite(v) || v < min) throw new Error(`--${flag} must be a number >= ${min}`);
  }
  const placement = PROXY_BENCH_LAYOUT.servers.find((s) => s.name === values.placement);
  if (!placement) throw new Error(`--placement must be one of ${PROXY_BENCH_LAYOUT.servers.map((s) => s.name).join(', ')}`);
  if (process.getuid?.() !== 0) throw new Error('bench:workers builds network namespaces: run it as root');

  const dir = mkdtempSync(join(tmpdir(), 'nm-bench-workers-'));
  writeFileSync(join(dir, 'topology.yaml'), proxyBenchTopology('ambient'));
  const sim = new SimFixture(uniqueSimName('bwrk'), dir);
  const started = Date.now();
  const phases: Phase[] = [];
  try {
    await sim.up();
    const appArgs = ['--http', '8080', '--h2c', 'off', '--grpc', 'off', '--ws', 'off', '--tls', 'off', '--tcp', 'off'];
    for (const s of PROXY_BENCH_LAYOUT.servers) await sim.startL7App(s.pod, ['--name', s.pod.split('/')[1]!, ...appArgs]);
    const first = await sim.startAgent('node1', AGENT_ARGS);
    await first.waitPod(CLIENT, 'enrolled', 30_000);
    const one = { pid: first.child.pid!, socket: pidSocketPath(first.socket, first.child.pid!) };
    phases.push(await measure(sim, '1 worker', [one], placement.url, o));

    // The second worker: a new agent held after taking the listeners, both accepting.
    const second = sim.spawnAgent('node1', AGENT_ARGS, undefined, { env: { NODEMESH_HANDOVER_PAUSE_AT: 'after-listeners', NODEMESH_HANDOVER_PAUSE_MS: String(PAUSE_MS) } });
    const two = { pid: second.child.pid!, socket: pidSocketPath(second.socket, second.child.pid!) };
    await waitFor(`the second agent to hold at after-listeners (log: ${second.log.slice(-1500)})`, async () => (await adminGet<HandoverStatus>(two.socket, '/debug/handover').catch(() => undefined))?.pausedAt === 'after-listeners', 60_000);
    phases.push(await measure(sim, '2 workers', [one, two], placement.url, o));
    second.child.kill('SIGKILL');
    await withDeadline(once(second.child, 'exit'), 10_000, 'the SIGKILLed second agent');
    await waitFor('the first agent to take its listeners back', async () => (await adminGet<HandoverStatus>(one.socket, '/debug/handover')).state === 'failed', 40_000);
    phases.push(await measure(sim, '1 worker again', [one], placement.url, o));
  } finally {
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }

  console.log(`\nclosed loop, ${o.connections} keep-alive connections, POST 1024 B to /echo on ${placement.name} node, ${o.duration} s per phase (${o.warmup} s warm-up); ${Math.round((Date.now() - started) / 1000)} s in all\n`);
  console.log('phase            req/s    p50 ms   p99 ms  failures  agent cores (requests)                 machine cores');
  for (const p of phases) {
    const agents = p.agents.map((a) => `${a.cores.toFixed(2)} (${a.requests})`).join(' + ');
    console.log(`${p.name.padEnd(15)} ${String(p.rps).padStart(6)}  ${p.p50.toFixed(3).padStart(7)}  ${p.p99.toFixed(3).padStart(7)}  ${String(p.failures).padStart(8)}  ${agents.padEnd(38)} ${p.machineCores.toFixed(2)}`);
  }
  const single = (phases[0]!.rps + phases[2]!.rps) / 2;
  console.log(`\n2 workers / 1 worker: ${(phases[1]!.rps / single).toFixed(2)}x requests per second (against the mean of the two 1-worker phases)`);
}

main().catch((err: unknown) => {
  console.error(`bench:workers: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  process.exit(1);
});
