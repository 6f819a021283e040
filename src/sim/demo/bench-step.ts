import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NodemeshError } from '../../errors';
import { withDeadline } from '../../util/deadline';
import { CLI } from '../harness';
import type { DemoOutput } from './context';
import type { BenchFigures, BenchRow } from './result';

/**
 * (f) The comparison: `nodemesh bench` as a user runs it (its own simulation, removed when
 * it ends), at a size that fits the demo: one placement (client and server on two nodes,
 * where mTLS counts), one connection count, 3 s measured per mode. The bench is a
 * command of a higher layer than the simulator, so the demo runs it as a process and
 * reads its report.json (schema deploy/bench/report.schema.json).
 */

export const DEMO_BENCH_ARGS = ['--quick', '--placements', 'cross-node', '--connections', '8', '--duration', '3', '--warmup', '0.5', '--max-duration', '0'];
const BENCH_TIMEOUT_MS = 240_000;

interface ReportRow {
  mode: string; placement: string; load: string; connections: number; requests: number;
  latencyMs: { p50: number; p99: number }; addedLatencyMs: { p50: number; p99: number } | null; proxyCpuSPer1000: number | null;
}
interface Report { results: ReportRow[]; modes: Array<{ name: string; status: string; reason?: string }>; elapsedS: number }

/** The bench's modes for the demo: direct, nodemesh sidecar, ambient with the demo's capture, Envoy sidecars. */
export function benchModes(capture: string): string[] {
  return ['direct', 'sidecar', capture === 'iptables' ? 'ambient-iptables' : 'ambient-ebpf', 'envoy-sidecar'];
}

const fmt = (n: number | null | undefined, digits = 2) => (n === null || n === undefined ? '-' : n.toFixed(digits));

export async function benchStep(out: DemoOutput, capture: string, reportDir: string, track: (stop: () => void) => void): Promise<BenchFigures> {
  const modes = benchModes(capture);
  out.heading('(f) The comparison: the same load direct, through nodemesh sidecars, the nodemesh node agent (ambient) and Envoy sidecars');
  const args = ['bench', '--modes', modes.join(','), ...DEMO_BENCH_ARGS, '--out', reportDir];
  out.line(`$ nodemesh ${args.join(' ')}`);
  out.line('(HTTP/1.1 POSTs of 1 KiB at 300 req/s over 8 connections, client and server on two nodes; mTLS between nodes in every meshed mode)');
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  track(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM'); });
  let log = '';
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stdout!.on('data', (d: string) => { log += d; });
  child.stderr!.on('data', (d: string) => { log += d; });
  const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
  let code: number | null;
  try {
    [code] = await withDeadline(exited, BENCH_TIMEOUT_MS, 'nodemesh bench');
  } catch (err) {
    child.kill('SIGTERM');
    await exited;
    throw err;
  }
  if (code !== 0) throw new NodemeshError('ERR_NM_DEMO_BENCH', `nodemesh bench exited with ${code}: ${log.slice(-1500)}`, { hint: 'run it alone to see why: nodemesh bench --quick' });
  const report = JSON.parse(readFileSync(join(reportDir, 'report.json'), 'utf8')) as Report;
  const rows: BenchRow[] = report.results
    .filter((r) => r.load === 'fixed-rate')
    .map((r) => ({
      mode: r.mode, placement: r.placement, connections: r.connections, requests: r.requests,
      p50Ms: r.latencyMs.p50, p99Ms: r.latencyMs.p99,
      addedP50Ms: r.addedLatencyMs?.p50 ?? null, addedP99Ms: r.addedLatencyMs?.p99 ?? null,
      proxyCpuSPer1000: r.proxyCpuSPer1000,
    }));
  out.line('');
  out.line(`${'mode'.padEnd(18)} ${'requests'.padStart(8)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'added p50'.padStart(9)} ${'added p99'.padStart(9)} ${'proxy CPU-s/1000 req'.padStart(20)}`);
  for (const r of rows) {
    out.line(`${r.mode.padEnd(18)} ${String(r.requests).padStart(8)} ${fmt(r.p50Ms).padStart(7)} ${fmt(r.p99Ms).padStart(7)} ${fmt(r.addedP50Ms).padStart(9)} ${fmt(r.addedP99Ms).padStart(9)} ${fmt(r.proxyCpuSPer1000, 3).padStart(20)}`);
  }
  const skipped = report.modes.filter((m) => m.status === 'skipped' && modes.includes(m.name)).map((m) => ({ mode: m.name, reason: m.reason ?? '' }));
  for (const s of skipped) out.line(`skipped ${s.mode}: ${s.reason}`);
  out.line(`(a short run on a shared machine: figures vary; \`nodemesh bench\` without --quick measures properly. Reports: ${reportDir})`);
  return { rows, skipped, reportDir, elapsedS: report.elapsedS };
}
