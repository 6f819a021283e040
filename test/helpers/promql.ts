import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { isCI } from './privileges';
import { ROOT } from './helm';

/**
 * Prometheus's own PromQL engine for the suites, as test/tools/promql-eval (built by
 * scripts/install-promql-eval.sh with Go the first time: minutes; later runs reuse
 * .tools/bin/promql-eval). Without it and without Go the suites skip locally and fail
 * under CI=true.
 */

/** One scrape of one target: its text exposition, its time and the target's labels. */
export interface Scrape {
  timeMs: number;
  labels: Record<string, string>;
  text: string;
}

/** An instant query at timeMs, or with stepMs a range query from startMs to timeMs. */
export interface PromQuery {
  id: string;
  expr: string;
  timeMs: number;
  startMs?: number;
  stepMs?: number;
  /** Return the label sets of an instant query's series. */
  labels?: boolean;
}

export interface PromAnswer {
  id: string;
  type?: string;
  /** Series holding at least one number (NaN is no data). */
  series: number;
  /** The first such series and its (last) value, for messages. */
  sample?: string;
  labels?: Array<Record<string, string>>;
  error?: string;
}

let binary: string | undefined;
let skipReason: string | undefined;

/** Finds or builds promql-eval (call from a before() with a long timeout). */
export function ensurePromqlEval(): void {
  if (binary) return;
  const started = Date.now();
  const r = spawnSync('bash', [join(ROOT, 'scripts', 'install-promql-eval.sh')], { encoding: 'utf8', timeout: 14 * 60_000 });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (r.status === 0) {
    binary = r.stdout.trim().split('\n').pop();
    process.stderr.write(`# promql-eval: ${binary} (scripts/install-promql-eval.sh took ${seconds}s)\n`);
    return;
  }
  const why = `scripts/install-promql-eval.sh exited ${r.status ?? r.signal} after ${seconds}s: ${r.stderr.trim().split('\n').slice(-3).join(' / ')}`;
  if (r.status === 3 && !isCI) {
    skipReason = `no promql-eval and no Go toolchain to build it (${why})`;
    return;
  }
  throw new Error(why);
}

export function needPromqlEval(t: TestContext): boolean {
  if (binary) return true;
  t.skip(skipReason ?? 'promql-eval unavailable');
  return false;
}

/** Loads the scrapes into a fresh TSDB and answers every query, in order. */
export function evaluatePromql(scrapes: Scrape[], queries: PromQuery[]): PromAnswer[] {
  if (!binary) throw new Error('ensurePromqlEval() first');
  const r = spawnSync(binary, [], { input: JSON.stringify({ scrapes, queries }), encoding: 'utf8', timeout: 120_000, maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`promql-eval exited ${r.status ?? r.signal}: ${r.stderr}`);
  const answers = r.stdout.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as PromAnswer);
  if (answers.length !== queries.length) throw new Error(`promql-eval answered ${answers.length} of ${queries.length} queries: ${r.stderr}`);
  return answers;
}
