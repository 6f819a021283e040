/**
 * An HTTP/1.1 keep-alive load generator, run inside simulated pods by `npm run bench:proxy`.
 *
 *   node dist/src/sim/apps/load-generator.js --url URL [--rate R] [--duration S] [--warmup S]
 *        [--connections C] [--body-bytes B] [--timeout MS] [--markers]
 *
 * --rate R > 0   open loop: request i is scheduled at start + i/R on a timer that does not
 *                wait for responses, and its latency runs from that scheduled time (no
 *                coordinated omission: a stall shows up in every request it delayed, and
 *                requests wait in the pool's queue when all C connections are busy).
 * --rate 0       closed loop: C workers, each sending its next request when the previous
 *                answer has been read; latency from the send. For maximum throughput.
 * --body-bytes B POST B bytes ('x', application/octet-stream); 0 sends a GET.
 * --duration S   the measured window (default 10); --warmup S before it (default 1) is
 *                run the same way and discarded.
 * --connections C undici Pool size (keep-alive, no pipelining; default 16).
 * --timeout MS   per request (headers and body; default 10000).
 *
 * Prints one JSON line, a LoadResult (latencies in milliseconds, an HDR histogram of the
 * window in microseconds, the generator's own CPU seconds in the window). With --markers it
 * first prints `{"phase":"measure"}` when the window opens and `{"phase":"done"}` when it
 * closes, each on its own line, so that a caller can sample CPU counters at those moments.
 * Exits 0 whenever it printed a result (request errors are counted in it), 2 on a usage
 * error, 1 if the run overran its deadline.
 */
import { performance } from 'node:perf_hooks';
import * as hdr from 'hdr-histogram-js';
import { Pool } from 'undici';

export interface LoadOptions {
  url: string;
  /** Requests per second (open loop); 0: closed loop. */
  rate: number;
  durationS: number;
  warmupS: number;
  connections: number;
  bodyBytes: number;
  timeoutMs: number;
  markers: boolean;
}

export const DEFAULT_LOAD_OPTIONS: Omit<LoadOptions, 'url'> = {
  rate: 0,
  durationS: 10,
  warmupS: 1,
  connections: 16,
  bodyBytes: 0,
  timeoutMs: 10_000,
  markers: false,
};

export interface LatencySummary {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

export interface LoadResult {
  mode: 'open' | 'closed';
  url: string;
  rate: number;
  connections: number;
  bodyBytes: number;
  warmupS: number;
  durationS: number;
  /** The measured window as it happened (seconds). */
  windowS: number;
  /** Requests of the window answered with a 2xx and read to the end. */
  requests: number;
  /** Answers other than 2xx, by status. */
  statuses: Record<string, number>;
  /** Transport failures and timeouts, by code. */
  errors: Record<string, number>;
  /** requests / windowS. */
  achievedRps: number;
  /** Mean response body size (bytes) of the window. */
  meanResponseBytes: number;
  /** Latency of the window's successful requests (ms); open loop: from the scheduled send. */
  latencyMs: LatencySummary;
  /** The same latencies as an HDR histogram in microseconds (hdr-histogram-js, compressed base64, 32-bit buckets). */
  histogram: string;
  /** Open loop only: how late the timer dispatched requests (actual send - scheduled, ms). */
  sendLagMs?: LatencySummary;
  /** This process's CPU time in the window (seconds). */
  cpuS: { user: number; system: number };
}

/** Parses the command line; throws on an unknown flag or a bad value. */
export function parseLoadArgs(argv: string[]): LoadOptions {
  const opts: Partial<LoadOptions> = {};
  const num = (flag: string, value: string | undefined, min: number, integer: boolean): number => {
    const n = Number(value);
    if (value === undefined || value === '' || !Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
      throw new Error(`bad value '${value ?? ''}' for ${flag}`);
    }
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === '--markers') {
      opts.markers = true;
      continue;
    }
    const value = argv[++i];
    switch (flag) {
      case '--url': {
        if (!value) throw new Error('--url needs a value');
        const u = new URL(value);
        if (u.protocol !== 'http:') throw new Error(`--url must be http:// (got ${u.protocol})`);
        opts.url = value;
        break;
      }
      case '--rate': opts.rate = num(flag, value, 0, false); break;
      case '--duration': opts.durationS = num(flag, value, 0.001, false); break;
      case '--warmup': opts.warmupS = num(flag, value, 0, false); break;
      case '--connections': opts.connections = num(flag, value, 1, true); break;
      case '--body-bytes': opts.bodyBytes = num(flag, value, 0, true); break;
      case '--timeout': opts.timeoutMs = num(flag, value, 1, true); break;
      default: throw new Error(`unknown flag '${flag}'`);
    }
  }
  if (!opts.url) throw new Error('--url is required');
  return { ...DEFAULT_LOAD_OPTIONS, ...opts } as LoadOptions;
}

/**
 * The open-loop schedule: request i is due at startMs + i * 1000 / rate, for every i with a
 * due time before endMs. due(now) hands out each due time exactly once, whatever the
 * responses do; after a stall of the caller it hands out every overdue time at once, each
 * keeping its own scheduled time (which the latency is measured from).
 */
export class OpenLoopSchedule {
  private index = 0;
  private readonly intervalMs: number;

  constructor(readonly startMs: number, readonly rate: number, private endMs: number) {
    if (!(rate > 0)) throw new Error('an open-loop schedule needs a rate above 0');
    this.intervalMs = 1000 / rate;
  }

  /** Ends the schedule early: nothing due after `atMs` is handed out (a load told to stop). */
  stop(atMs: number): void {
    this.endMs = Math.min(this.endMs, atMs);
  }

  /** The time request `i` is scheduled for. */
  at(i: number): number {
    return this.startMs + i * this.intervalMs;
  }

  /** When the next request is due; Infinity once the schedule is over. */
  nextAt(): number {
    const t = this.at(this.index);
    return t < this.endMs ? t : Infinity;
  }

  /** The scheduled times due at `now` not yet handed out, in order. */
  due(now: number): number[] {
    const out: number[] = [];
    for (;;) {
      const t = this.at(this.index);
      if (t >= this.endMs || t > now) return out;
      out.push(t);
      this.index += 1;
    }
  }

  get done(): boolean {
    return this.at(this.index) >= this.endMs;
  }
}

function newHistogram(): hdr.Histogram {
  return hdr.build({ bitBucketSize: 32, numberOfSignificantValueDigits: 3, useWebAssembly: false });
}

/** Summary (ms) of a histogram recorded in microseconds. */
export function summarize(h: hdr.Histogram): LatencySummary {
  const ms = (us: number) => us / 1000;
  if (h.totalCount === 0) return { n: 0, p50: NaN, p90: NaN, p99: NaN, p999: NaN, max: NaN, mean: NaN };
  return {
    n: h.totalCount,
    p50: ms(h.getValueAtPercentile(50)),
    p90: ms(h.getValueAtPercentile(90)),
    p99: ms(h.getValueAtPercentile(99)),
    p999: ms(h.getValueAtPercentile(99.9)),
    max: ms(h.maxValue),
    mean: ms(h.mean),
  };
}

/** Merges LoadResult histograms (e.g. of several rounds) into one summary. */
export function mergeHistograms(encoded: string[]): LatencySummary {
  const total = newHistogram();
  for (const e of encoded) total.add(hdr.decodeFromCompressedBase64(e, 32, false));
  return summarize(total);
}

function recordUs(h: hdr.Histogram, ms: number): void {
  h.recordValue(Math.max(1, Math.round(ms * 1000)));
}

/** A stable code for a request failure. */
export function failureCode(err: unknown): string {
  const e = err as { code?: unknown; name?: string; message?: string; cause?: { code?: unknown } } | undefined;
  if (!e) return 'UNKNOWN';
  if (e.code === 'UND_ERR_SOCKET' && typeof e.cause?.code === 'string') return e.cause.code;
  if (typeof e.code === 'string') return e.code;
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'ETIMEDOUT';
  return e.message ?? String(err);
}

type Outcome = { ok: true; bytes: number } | { ok: false; status?: number; code?: string };

/** Runs the load; `onPhase` is called as the measured window opens and closes. */
export async function runLoad(options: LoadOptions, onPhase?: (phase: 'measure' | 'done') => void): Promise<LoadResult> {
  const url = new URL(options.url);
  const path = `${url.pathname}${url.search}`;
  const pool = new Pool(url.origin, {
    connections: options.connections,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    keepAliveMaxTimeout: 60_000,
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
  });
  const body = options.bodyBytes > 0 ? Buffer.alloc(options.bodyBytes, 0x78) : undefined;
  const headers = body ? { 'content-type': 'application/octet-stream' } : {};
  const method = body ? 'POST' : 'GET';

  const send = async (): Promise<Outcome> => {
    try {
      const res = await pool.request({ path, method, headers, body: body ?? null });
      const data = await res.body.arrayBuffer();
      if (res.statusCode < 200 || res.statusCode > 299) return { ok: false, status: res.statusCode };
      return { ok: true, bytes: data.byteLength };
    } catch (err) {
      return { ok: false, code: failureCode(err) };
    }
  };

  const histogram = newHistogram();
  const lag = newHistogram();
  const statuses: Record<string, number> = {};
  const errors: Record<string, number> = {};
  let requests = 0;
  let responseBytes = 0;
  const account = (outcome: Outcome, latencyMs: number) => {
    if (outcome.ok) {
      requests += 1;
      responseBytes += outcome.bytes;
      recordUs(histogram, latencyMs);
    } else if (outcome.status !== undefined) {
      statuses[outcome.status] = (statuses[outcome.status] ?? 0) + 1;
    } else {
      errors[outcome.code ?? 'UNKNOWN'] = (errors[outcome.code ?? 'UNKNOWN'] ?? 0) + 1;
    }
  };

  const start = performance.now() + 5;
  const measureAt = start + options.warmupS * 1000;
  const endAt = measureAt + options.durationS * 1000;
  let windowStart = NaN;
  let windowEnd = NaN;
  let cpuAtStart: NodeJS.CpuUsage = process.cpuUsage();
  let cpu: NodeJS.CpuUsage = { user: 0, system: 0 };
  let measuring = false;
  let closed = false;
  const phaseTimers: NodeJS.Timeout[] = [];
  const windowClosed = new Promise<void>((resolveClosed) => {
    phaseTimers.push(setTimeout(() => {
      windowStart = performance.now();
      cpuAtStart = process.cpuUsage();
      measuring = true;
      onPhase?.('measure');
    }, Math.max(0, measureAt - performance.now())));
    phaseTimers.push(setTimeout(() => {
      windowEnd = performance.now();
      cpu = process.cpuUsage(cpuAtStart);
      closed = true;
      onPhase?.('done');
      resolveClosed();
    }, Math.max(0, endAt - performance.now())));
  });

  const inFlight = new Set<Promise<void>>();
  const track = (p: Promise<void>) => {
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };

  try {
    if (options.rate > 0) {
      const schedule = new OpenLoopSchedule(start, options.rate, endAt);
      const fire = (scheduled: number, now: number) => {
        const measured = scheduled >= measureAt;
        if (measured) recordUs(lag, now - scheduled);
        track(send().then((outcome) => {
          if (measured) account(outcome, performance.now() - scheduled);
        }));
      };
      await new Promise<void>((resolveSent) => {
        const tick = () => {
          const now = performance.now();
          for (const t of schedule.due(now)) fire(t, now);
          if (schedule.done) return resolveSent();
          // Node's timers have millisecond resolution: a request is sent up to ~1 ms late,
          // and that lateness counts in its latency (sendLagMs shows how much).
          setTimeout(tick, Math.max(0, schedule.nextAt() - performance.now()));
        };
        setTimeout(tick, Math.max(0, start - performance.now()));
      });
      await windowClosed;
    } else {
      const worker = async () => {
        while (!closed) {
          const sent = performance.now();
          const outcome = await send();
          const now = performance.now();
          // Count what completed inside the window (a request straddling an edge counts on
          // the side it completed).
          if (measuring && !closed) account(outcome, now - sent);
        }
      };
      await new Promise((r) => setTimeout(r, Math.max(0, start - performance.now())));
      for (let i = 0; i < options.connections; i++) track(worker());
      await windowClosed;
    }
    await Promise.all([...inFlight]);
  } finally {
    for (const t of phaseTimers) clearTimeout(t);
    await pool.destroy().catch(() => undefined);
  }

  const windowS = (windowEnd - windowStart) / 1000;
  return {
    mode: options.rate > 0 ? 'open' : 'closed',
    url: options.url,
    rate: options.rate,
    connections: options.connections,
    bodyBytes: options.bodyBytes,
    warmupS: options.warmupS,
    durationS: options.durationS,
    windowS,
    requests,
    statuses,
    errors,
    achievedRps: requests / windowS,
    meanResponseBytes: requests ? responseBytes / requests : 0,
    latencyMs: summarize(histogram),
    histogram: hdr.encodeIntoCompressedBase64(histogram),
    ...(options.rate > 0 ? { sendLagMs: summarize(lag) } : {}),
    cpuS: { user: cpu.user / 1e6, system: cpu.system / 1e6 },
  };
}

async function main(): Promise<void> {
  let options: LoadOptions;
  try {
    options = parseLoadArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`${(err as Error).message}\nusage: load-generator --url URL [--rate R (0 = closed loop)] [--duration S] [--warmup S] [--connections C] [--body-bytes B] [--timeout MS] [--markers]`);
    process.exit(2);
  }
  // A run never outlives its window by more than the request timeout (and a margin).
  const deadlineMs = (options.warmupS + options.durationS) * 1000 + options.timeoutMs + 5000;
  const deadline = setTimeout(() => {
    console.log(JSON.stringify({ error: 'ETIMEDOUT', message: `the run did not finish within ${deadlineMs} ms` }));
    process.exit(1);
  }, deadlineMs);
  const result = await runLoad(options, (phase) => {
    if (options.markers) process.stdout.write(`${JSON.stringify({ phase })}\n`);
  });
  clearTimeout(deadline);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.log(JSON.stringify({ error: failureCode(err), message: err instanceof Error ? err.message : String(err) }));
    process.exit(1);
  });
}
