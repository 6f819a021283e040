/**
 * npm run bench:capture — round-trip time of a 64-byte ping-pong through the capture hop.
 *
 * On the simulator: a1 (client) and a2 (echo server) on node1. Modes: `direct` (a1 not
 * enrolled), `iptables`, `ebpf`, `ebpf+sk_msg` (a1 enrolled, the node proxy in the path).
 * Modes run in interleaved rounds so machine drift hits all of them alike; the first
 * WARMUP round trips of every run are dropped. Prints a table and ratios; nothing here is
 * a pass/fail test.
 *
 * Flags: --rounds R (default 3), --trips N (per run, default 4000), --size BYTES (64),
 *        --json FILE (also write the figures as JSON).
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ECHO_APP, EXAMPLE_TOPOLOGY, SimFixture, uniqueSimName, type AgentHandle } from '../sim/harness';
import { removeSimAgentState } from '../agent/agent-state';

const WARMUP = 200;

interface Mode {
  name: string;
  agentArgs?: string[];
}

const MODES: Mode[] = [
  { name: 'direct' },
  { name: 'iptables', agentArgs: ['--capture', 'iptables'] },
  { name: 'ebpf', agentArgs: ['--capture', 'ebpf'] },
  { name: 'ebpf+sk_msg', agentArgs: ['--capture', 'ebpf', '--sk-msg'] },
];

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

function writeMode(dir: string, mode: 'ambient' | 'off'): void {
  const text = readFileSync(EXAMPLE_TOPOLOGY, 'utf8').replace('nodemesh.dev/mode: ambient', `nodemesh.dev/mode: ${mode}`);
  writeFileSync(join(dir, 'topology.yaml'), text);
}

async function runOnce(sim: SimFixture, trips: number, size: number): Promise<number[]> {
  const out = await sim.runInPod('demo/a1', ['node', ECHO_APP, 'pingpong', '10.244.1.12', '8080', String(trips + WARMUP), String(size)]);
  const parsed = JSON.parse(out) as { micros?: number[]; error?: string };
  if (!parsed.micros) throw new Error(`ping-pong failed: ${out}`);
  return parsed.micros.slice(WARMUP);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '3' },
      trips: { type: 'string', default: '4000' },
      size: { type: 'string', default: '64' },
      json: { type: 'string' },
    },
  });
  const rounds = Number(values.rounds);
  const trips = Number(values.trips);
  const size = Number(values.size);
  if (process.getuid?.() !== 0) throw new Error('bench:capture builds network namespaces: run it as root');

  const dir = mkdtempSync(join(tmpdir(), 'nm-bench-'));
  copyFileSync(EXAMPLE_TOPOLOGY, join(dir, 'topology.yaml'));
  writeMode(dir, 'off');
  const sim = await new SimFixture(uniqueSimName('bench'), dir).up();
  const samples = new Map<string, number[]>(MODES.map((m) => [m.name, []]));
  try {
    await sim.startEchoServer('demo/a2');
    for (let round = 1; round <= rounds; round++) {
      for (const mode of MODES) {
        let agent: AgentHandle | undefined;
        if (mode.agentArgs) {
          writeMode(dir, 'ambient');
          agent = await sim.startAgent('node1', mode.agentArgs);
          await agent.waitPod('demo/a1', 'enrolled');
        }
        try {
          const micros = await runOnce(sim, trips, size);
          samples.get(mode.name)!.push(...micros);
          const sorted = [...micros].sort((a, b) => a - b);
          console.error(`round ${round} ${mode.name.padEnd(12)} p50 ${percentile(sorted, 50).toFixed(1)} us`);
        } finally {
          if (agent) {
            writeMode(dir, 'off');
            await agent.waitPod('demo/a1', 'absent');
            await agent.stop();
            removeSimAgentState(sim.name);
          }
        }
      }
    }
  } finally {
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }

  const rows = MODES.map((m) => {
    const sorted = [...samples.get(m.name)!].sort((a, b) => a - b);
    const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length;
    return { mode: m.name, n: sorted.length, p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99), mean };
  });
  const base = (name: string) => rows.find((r) => r.mode === name)!;
  console.log(`\n64-byte ping-pong round trip through the capture hop (${rounds} interleaved rounds x ${trips} trips, ${size} B, microseconds)\n`);
  console.log(`${'mode'.padEnd(13)} ${'n'.padStart(6)} ${'p50'.padStart(8)} ${'p90'.padStart(8)} ${'p99'.padStart(8)} ${'mean'.padStart(8)}  vs iptables (p50)`);
  for (const r of rows) {
    const ratio = r.p50 / base('iptables').p50;
    console.log(`${r.mode.padEnd(13)} ${String(r.n).padStart(6)} ${r.p50.toFixed(1).padStart(8)} ${r.p90.toFixed(1).padStart(8)} ${r.p99.toFixed(1).padStart(8)} ${r.mean.toFixed(1).padStart(8)}  ${ratio.toFixed(3)}`);
  }
  const sk = base('ebpf+sk_msg');
  const ipt = base('iptables');
  const below = (1 - sk.p50 / ipt.p50) * 100;
  console.log(`\nebpf+sk_msg p50 is ${below.toFixed(1)}% ${below >= 0 ? 'below' : 'above'} iptables (target: at least 20% below)`);
  if (values.json) writeFileSync(values.json, JSON.stringify({ rounds, trips, size, rows }, null, 2));
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(`bench:capture: ${String(err instanceof Error ? err.stack : err)}`);
    process.exit(1);
  });
}
