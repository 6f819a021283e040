/**
 * npm run bench:handover — what an agent hand-over costs (issue 15), on the simulator
 * (test/fixtures/handover-load/topology.yaml: the client c1 and the server s1 on node1, b1 on
 * node2). Two parts, figures only (nothing here passes or fails):
 *
 * 1. The latency blip. Keep-alive HTTP/1.1 at --rate req/s (open loop, latency from each
 *    request's scheduled time) from c1 to Service web (s1 and b1), while node1's agent is
 *    restarted --restarts times as a rolling update does it (src/sim/rolling-restart.ts),
 *    with --gap-s seconds of load between restarts. A request is "around the switch" when
 *    it was scheduled from 0.5 s before a hand-over was first seen (on either agent's
 *    /debug/handover) to 0.5 s after the new agent was seen done (the second around the
 *    switch when the hand-over itself is short); the rest of the run is the reference.
 *    p50/p99/max of both, and the failures.
 * 2. How long a hand-over takes with N connections held open (--connections, default
 *    10,100,1000): N TCP connections from c1 to s1 (relayed by node1's agent, both sockets
 *    its own), then one rolling restart of node1's agent: the duration the agent reports
 *    (/debug/handover durationMs), the harness's spawn-to-serving and spawn-to-old-exit
 *    times, and how many of the N connections still echo afterwards.
 *
 * Flags: --capture ebpf|iptables (default ebpf), --rate R (500), --restarts N (3; 0: part 2 only),
 *        --gap-s S (3), --connections LIST (10,100,1000), --drain-ms MS (15000),
 *        --json FILE (default bench-results/handover.json).
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT, SimFixture, uniqueSimName, type AgentHandle } from '../sim/harness';
import { rollingRestart, type RollingRestart } from '../sim/rolling-restart';
import { summarize, type LatencySummary } from '../sim/apps/load-generator';
import type { HoldSteadyResult, HttpSteadyResult } from '../sim/apps/steady-client';
import { newHistogram } from './report';

const TOPOLOGY = join(ROOT, 'test', 'fixtures', 'handover-load', 'topology.yaml');
const WEB = '10.96.1.40';
const S_STREAM = '10.96.1.41';
/** Before the first hand-over is seen and after the new agent is done: the second around the switch. */
const AROUND_MS = 500;

export interface SwitchWindow {
  fromMs: number;
  toMs: number;
}

export interface RestartFigures {
  readyMs: number;
  oldExitMs: number;
  /** As the new agent reports it (/debug/handover durationMs), when it does. */
  handoverMs: number | null;
  handover: RollingRestart['handover'];
}

export interface BlipFigures {
  rate: number;
  requests: number;
  failed: number;
  errors: Record<string, number>;
  aroundSwitch: LatencySummary;
  rest: LatencySummary;
  perSwitch: Array<RestartFigures & { window: SwitchWindow; latency: LatencySummary; failed: number }>;
}

export interface HoldFigures extends RestartFigures {
  connections: number;
  /** Connections that still echoed after the hand-over. */
  survived: number;
}

/** The window of one restart, in wall-clock ms (see the file comment). */
export function switchWindow(r: Pick<RollingRestart, 'spawnedAt' | 'readyMs' | 'handoverSeenAt' | 'handoverDoneAt'>): SwitchWindow {
  // Without the agents' own view, the moment the new agent served every pod stands in for both ends.
  const ready = r.spawnedAt + r.readyMs;
  const from = r.handoverSeenAt ?? r.handoverDoneAt ?? ready;
  const to = Math.max(from, r.handoverDoneAt ?? ready);
  return { fromMs: from - AROUND_MS, toMs: to + AROUND_MS };
}

/** Splits [scheduled epoch ms, latency ms] samples into those inside any window and the rest. */
export function splitSamples(samples: Array<[number, number]>, windows: SwitchWindow[]): { around: LatencySummary; rest: LatencySummary; per: LatencySummary[] } {
  const around = newHistogram();
  const rest = newHistogram();
  const per = windows.map(() => newHistogram());
  for (const [at, ms] of samples) {
    const us = Math.max(1, Math.round(ms * 1000));
    const i = windows.findIndex((w) => at >= w.fromMs && at <= w.toMs);
    if (i >= 0) {
      around.recordValue(us);
      per[i]!.recordValue(us);
    } else {
      rest.recordValue(us);
    }
  }
  return { around: summarize(around), rest: summarize(rest), per: per.map(summarize) };
}

function figures(r: RollingRestart): RestartFigures {
  const d = r.handover.new?.durationMs ?? r.handover.old?.durationMs;
  return { readyMs: r.readyMs, oldExitMs: r.oldExitMs, handoverMs: typeof d === 'number' ? d : null, handover: r.handover };
}

async function blip(sim: SimFixture, agent: AgentHandle, o: { rate: number; restarts: number; gapS: number }, log: (l: string) => void): Promise<{ agent: AgentHandle; figures: BlipFigures }> {
  const load = sim.steadyClient<HttpSteadyResult>('demo/c1', ['http', `http://${WEB}/`, '--rate', String(o.rate), '--connections', '8', '--samples', '--max-seconds', String(60 + o.restarts * (o.gapS + 60))]);
  await load.running();
  await load.advance(o.rate * o.gapS, 60_000);
  const restarts: RollingRestart[] = [];
  for (let i = 1; i <= o.restarts; i++) {
    const r = await rollingRestart(sim, agent);
    agent = r.agent;
    restarts.push(r);
    log(`restart ${i}: serving after ${r.readyMs} ms, old agent gone after ${r.oldExitMs} ms, hand-over ${JSON.stringify(r.handover.new ?? null)}`);
    await load.advance(o.rate * o.gapS, 60_000);
  }
  const result = await load.stop();
  const windows = restarts.map(switchWindow);
  const split = splitSamples(result.samples ?? [], windows);
  const failedIn = (w: SwitchWindow) => result.failedAt.filter((t) => t >= w.fromMs && t <= w.toMs).length;
  return {
    agent,
    figures: {
      rate: o.rate,
      requests: result.requests,
      failed: result.failed,
      errors: result.errors,
      aroundSwitch: split.around,
      rest: split.rest,
      perSwitch: restarts.map((r, i) => ({ ...figures(r), window: windows[i]!, latency: split.per[i]!, failed: failedIn(windows[i]!) })),
    },
  };
}

async function holdOpen(sim: SimFixture, agent: AgentHandle, n: number, log: (l: string) => void): Promise<{ agent: AgentHandle; figures: HoldFigures }> {
  const hold = sim.steadyClient<HoldSteadyResult>('demo/c1', ['hold', S_STREAM, '9000', '--connections', String(n), '--max-seconds', '600']);
  await hold.running(120_000);
  const r = await rollingRestart(sim, agent);
  hold.send('check');
  const result = await hold.stop(120_000);
  log(`${n} connections: hand-over ${JSON.stringify(r.handover.new ?? null)}, serving after ${r.readyMs} ms, old agent gone after ${r.oldExitMs} ms, ${result.ok} of ${n} echo afterwards`);
  return { agent: r.agent, figures: { connections: n, survived: result.ok, ...figures(r) } };
}

const fmt = (v: number | null | undefined, digits = 2) => (v === null || v === undefined || Number.isNaN(v) ? '-' : v.toFixed(digits));

function printBlip(b: BlipFigures): void {
  console.log(`\nLatency around a hand-over: keep-alive HTTP/1.1 at ${b.rate} req/s, ${b.requests} requests, ${b.failed} failed${b.failed ? ` ${JSON.stringify(b.errors)}` : ''} (ms)\n`);
  console.log(`${'requests'.padEnd(26)} ${'n'.padStart(7)} ${'p50'.padStart(8)} ${'p99'.padStart(8)} ${'max'.padStart(8)}`);
  const row = (name: string, l: LatencySummary, extra = '') => console.log(`${name.padEnd(26)} ${String(l.n).padStart(7)} ${fmt(l.p50).padStart(8)} ${fmt(l.p99).padStart(8)} ${fmt(l.max).padStart(8)}${extra}`);
  row('around the switches', b.aroundSwitch);
  row('rest of the run', b.rest);
  b.perSwitch.forEach((s, i) => row(`  switch ${i + 1}`, s.latency, `   hand-over ${fmt(s.handoverMs, 0)} ms, window ${s.window.toMs - s.window.fromMs} ms, ${s.failed} failed`));
}

function printHold(rows: HoldFigures[]): void {
  console.log('\nHand-over time by connections held open (TCP relays c1 -> s1 on node1, ms)\n');
  console.log(`${'connections'.padEnd(12)} ${'hand-over'.padStart(10)} ${'serving'.padStart(9)} ${'old gone'.padStart(9)} ${'survived'.padStart(9)}`);
  for (const r of rows) console.log(`${String(r.connections).padEnd(12)} ${fmt(r.handoverMs, 0).padStart(10)} ${String(r.readyMs).padStart(9)} ${String(r.oldExitMs).padStart(9)} ${`${r.survived}/${r.connections}`.padStart(9)}`);
  console.log('\nhand-over: as the new agent reports it; serving / old gone: from the new agent\'s spawn, as the harness saw them');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      capture: { type: 'string', default: 'ebpf' },
      rate: { type: 'string', default: '500' },
      restarts: { type: 'string', default: '3' },
      'gap-s': { type: 'string', default: '3' },
      connections: { type: 'string', default: '10,100,1000' },
      'drain-ms': { type: 'string', default: '15000' },
      json: { type: 'string', default: join('bench-results', 'handover.json') },
    },
  });
  const capture = values.capture!;
  if (capture !== 'ebpf' && capture !== 'iptables') throw new Error(`--capture must be ebpf or iptables, not '${capture}'`);
  const positive = (flag: string, v: string | undefined) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${flag} must be a number above 0, got '${v ?? ''}'`);
    return n;
  };
  const rate = positive('--rate', values.rate);
  // 0 leaves the latency part out (only the held-connection hand-overs run).
  const restarts = values.restarts === '0' ? 0 : Math.floor(positive('--restarts', values.restarts));
  const gapS = positive('--gap-s', values['gap-s']);
  const counts = values.connections!.split(',').map((c) => Math.floor(positive('--connections', c)));
  if (process.getuid?.() !== 0) throw new Error('bench:handover builds network namespaces: run it as root');
  const log = (l: string) => process.stderr.write(`bench:handover: ${l}\n`);

  const dir = mkdtempSync(join(tmpdir(), 'nm-bench-handover-'));
  copyFileSync(TOPOLOGY, join(dir, 'topology.yaml'));
  const sim = new SimFixture(uniqueSimName('bho'), dir);
  const started = Date.now();
  let report: Record<string, unknown>;
  try {
    await sim.up();
    await Promise.all(['s1', 'b1'].map((p) => sim.startL7App(`demo/${p}`, ['--name', p])));
    const args = ['--capture', capture, '--drain-ms', values['drain-ms']!];
    let [node1] = await Promise.all([sim.startAgent('node1', args), sim.startAgent('node2', args)]);
    for (const p of ['c1', 's1']) await node1!.waitPod(`demo/${p}`, 'enrolled', 30_000);
    const b = restarts > 0 ? await blip(sim, node1!, { rate, restarts, gapS }, log) : undefined;
    if (b) {
      node1 = b.agent;
      // Printed at once: a later part that fails must not lose these figures.
      printBlip(b.figures);
    }
    const held: HoldFigures[] = [];
    for (const n of counts) {
      const h = await holdOpen(sim, node1!, n, log);
      node1 = h.agent;
      held.push(h.figures);
    }
    printHold(held);
    report = { capture, rate, restarts, gapS, elapsedS: Math.round((Date.now() - started) / 1000), blip: b?.figures ?? null, held };
  } finally {
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const out = resolve(values.json!);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\nfigures: ${out}`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(`bench:handover: ${String(err instanceof Error ? err.stack ?? err.message : err)}`);
    process.exit(1);
  });
}
