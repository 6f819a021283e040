/**
 * Running one load inside the client pod: fortio when the bench setup installed it (the
 * tool Istio publishes its figures with), else the built-in generator
 * (src/sim/apps/load-generator.ts). Both give a LoadOutcome: the measured window's 2xx
 * count, failures, length, and latencies as an HDR histogram in microseconds, so that the
 * report merges rounds the same way whichever tool ran.
 *
 * The caller samples CPU counters when the window opens and closes: fortio prints
 * "Starting at ..." and "Ended after ..." on stderr around its run (after its per-connection
 * warm-up request), the built-in generator prints {"phase":"measure"} and {"phase":"done"}
 * with --markers.
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import * as hdr from 'hdr-histogram-js';
import { execInPod } from '../sim/exec';
import { ROOT } from '../sim/harness';
import type { SimState } from '../sim/state';
import type { LoadResult } from '../sim/apps/load-generator';
import { encodeHistogram, newHistogram } from './report';

export const LOAD_GENERATOR = join(ROOT, 'dist', 'src', 'sim', 'apps', 'load-generator.js');

export interface LoadSpec {
  url: string;
  /** Requests per second; 0 = as fast as answers come (maximum throughput). */
  rate: number;
  connections: number;
  durationS: number;
  payloadBytes: number;
  /** Built-in generator only: a warm-up on the same connections before the window. */
  warmupS: number;
}

export interface LoadOutcome {
  requests: number;
  failures: number;
  failureDetail: Record<string, number>;
  windowS: number;
  histogram: string;
}

export type LoadTool = { tool: 'fortio'; bin: string } | { tool: 'builtin' };

/** fortio's histogram resolution (-r): 1 µs, so that sub-millisecond latencies keep their digits. */
export const FORTIO_RESOLUTION_S = 0.000001;

export function fortioArgs(bin: string, spec: LoadSpec): string[] {
  return [
    bin, 'load',
    '-qps', String(spec.rate),
    '-c', String(spec.connections),
    '-t', `${spec.durationS}s`,
    '-payload-size', String(spec.payloadBytes),
    '-uniform',
    '-r', String(FORTIO_RESOLUTION_S),
    '-p', '50,90,99,99.9',
    '-timeout', '10s',
    '-json', '-',
    spec.url,
  ];
}

export function builtinArgs(spec: LoadSpec): string[] {
  return [
    'node', LOAD_GENERATOR,
    '--url', spec.url,
    '--rate', String(spec.rate),
    '--connections', String(spec.connections),
    '--duration', String(spec.durationS),
    '--warmup', String(spec.warmupS),
    '--body-bytes', String(spec.payloadBytes),
    '--timeout', '10000',
    '--markers',
  ];
}

/** The parts of fortio's JSON result the bench reads. */
export interface FortioResult {
  ActualQPS: number;
  /** Nanoseconds. */
  ActualDuration: number;
  RetCodes: Record<string, number>;
  DurationHistogram: {
    Count: number;
    Data: Array<{ Start: number; End: number; Count: number }> | null;
  };
}

/**
 * fortio's histogram (buckets in seconds) as an HDR histogram in microseconds: each
 * bucket's count spread evenly over its range, as fortio itself interpolates inside a
 * bucket when it computes percentiles.
 */
export function fortioHistogram(result: FortioResult): string {
  const h = newHistogram();
  for (const b of result.DurationHistogram.Data ?? []) {
    if (b.Count <= 0) continue;
    const lo = b.Start * 1e6;
    const hi = Math.max(lo, b.End * 1e6);
    const points = Math.min(b.Count, 20);
    const each = Math.floor(b.Count / points);
    let extra = b.Count - each * points;
    for (let j = 0; j < points; j++) {
      const v = Math.max(1, Math.round(lo + ((j + 0.5) / points) * (hi - lo)));
      const n = each + (extra > 0 ? 1 : 0);
      if (extra > 0) extra -= 1;
      h.recordValueWithCount(v, n);
    }
  }
  return encodeHistogram(h);
}

export function fromFortio(result: FortioResult): LoadOutcome {
  const failureDetail: Record<string, number> = {};
  let ok = 0;
  for (const [code, n] of Object.entries(result.RetCodes ?? {})) {
    const c = Number(code);
    if (c >= 200 && c <= 299) ok += n;
    else failureDetail[code === '-1' ? 'socket error' : code] = (failureDetail[code] ?? 0) + n;
  }
  return {
    requests: ok,
    failures: Object.values(failureDetail).reduce((a, b) => a + b, 0),
    failureDetail,
    windowS: result.ActualDuration / 1e9,
    histogram: fortioHistogram(result),
  };
}

export function fromBuiltin(result: LoadResult): LoadOutcome {
  const failureDetail: Record<string, number> = { ...result.statuses, ...result.errors };
  return {
    requests: result.requests,
    failures: Object.values(failureDetail).reduce((a, b) => a + b, 0),
    failureDetail,
    windowS: result.windowS,
    histogram: result.histogram,
  };
}

/** Decodes an outcome's histogram (tests and logs). */
export function percentileMs(histogram: string, p: number): number {
  const h = hdr.decodeFromCompressedBase64(histogram, 32, false);
  return h.totalCount ? h.getValueAtPercentile(p) / 1000 : NaN;
}

/** What a load process left: its output, and how it ended. */
interface PodRun {
  stdout: string;
  /** The last 20 kB, for error messages. */
  stderr: string;
  code: number | null;
  /** Whether the process itself marked both edges of the window. */
  marked: boolean;
}

/**
 * Runs `argv` in `pod`, calling onWindow('start' | 'end') as the measured window opens and
 * closes (each once, in that order, even when the process ends without its markers). The
 * process is killed (by its pid) if it overruns `limitMs`.
 */
async function runWindowed(state: SimState, pod: string, tool: LoadTool['tool'], argv: string[], onWindow: (edge: 'start' | 'end') => void, limitMs: number): Promise<PodRun> {
  const child: ChildProcess = execInPod(state, pod, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let started = false;
  let ended = false;
  const edge = (e: 'start' | 'end') => {
    if (e === 'start' && !started) {
      started = true;
      onWindow('start');
    } else if (e === 'end' && started && !ended) {
      ended = true;
      onWindow('end');
    }
  };
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  let pendingOut = '';
  child.stdout!.on('data', (d: string) => {
    stdout += d;
    if (tool !== 'builtin') return;
    pendingOut += d;
    let nl: number;
    while ((nl = pendingOut.indexOf('\n')) >= 0) {
      const line = pendingOut.slice(0, nl);
      pendingOut = pendingOut.slice(nl + 1);
      if (line.includes('"phase":"measure"')) edge('start');
      else if (line.includes('"phase":"done"')) edge('end');
    }
  });
  let pendingErr = '';
  child.stderr!.on('data', (d: string) => {
    stderr = (stderr + d).slice(-20_000);
    if (tool !== 'fortio') return;
    pendingErr += d;
    let nl: number;
    while ((nl = pendingErr.indexOf('\n')) >= 0) {
      const line = pendingErr.slice(0, nl);
      pendingErr = pendingErr.slice(nl + 1);
      if (/^Starting at /.test(line)) edge('start');
      else if (/^Ended after /.test(line)) edge('end');
    }
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), limitMs);
  const code = await new Promise<number | null>((resolveExit) => child.once('close', (c) => resolveExit(c)));
  clearTimeout(killer);
  const marked = started && ended;
  if (!started) edge('start');
  edge('end');
  return { stdout, stderr, code, marked };
}

/** The built-in generator's result: the last line of its output that has one. */
function builtinResult(run: PodRun, what: string): LoadResult {
  const last = run.stdout.trim().split('\n').filter((l) => l.includes('"requests"')).at(-1);
  if (!last) throw new Error(`${what}: no result (exit ${run.code}): ${run.stdout.slice(-500)} ${run.stderr.slice(-1000)}`);
  return JSON.parse(last) as LoadResult;
}

/**
 * Runs one load in `pod`; onWindow('start' | 'end') is called as the measured window opens
 * and closes. The process is killed (by its pid) if it overruns `limitMs`.
 */
export async function runLoadInPod(state: SimState, pod: string, tool: LoadTool, spec: LoadSpec, onWindow: (edge: 'start' | 'end') => void, limitMs: number): Promise<LoadOutcome> {
  const argv = tool.tool === 'fortio' ? fortioArgs(tool.bin, spec) : builtinArgs(spec);
  const run = await runWindowed(state, pod, tool.tool, argv, onWindow, limitMs);
  const what = `${tool.tool} ${spec.rate > 0 ? `${spec.rate} req/s` : 'max'} c=${spec.connections} ${spec.url}`;
  if (tool.tool === 'fortio') {
    let parsed: FortioResult;
    try {
      parsed = JSON.parse(run.stdout) as FortioResult;
    } catch {
      throw new Error(`${what}: no JSON result (exit ${run.code}): ${run.stderr.slice(-1500)}`);
    }
    return fromFortio(parsed);
  }
  return fromBuiltin(builtinResult(run, what));
}

/**
 * Runs the built-in generator with its own flags (`args`, without --markers) in `pod` and
 * returns its whole result, latency summary and timer lateness included (bench:proxy
 * reports them); onWindow and limitMs as for runLoadInPod.
 */
export async function runBuiltinLoad(state: SimState, pod: string, args: string[], onWindow: (edge: 'start' | 'end') => void, limitMs: number): Promise<LoadResult> {
  const run = await runWindowed(state, pod, 'builtin', ['node', LOAD_GENERATOR, ...args, '--markers'], onWindow, limitMs);
  const result = builtinResult(run, `load generator ${args.join(' ')}`);
  // Without both markers the CPU samples around the window are not the window's.
  if (!run.marked) throw new Error(`load generator ${args.join(' ')} printed no window markers (exit ${run.code}): ${run.stderr.slice(-1000)}`);
  return result;
}
