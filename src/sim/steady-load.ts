import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import type { SteadyCounts, SteadyResult } from './apps/steady-client';
import { pollUntil, withDeadline } from '../util/deadline';

/**
 * The simulator side of src/sim/apps/steady-client.ts: one long-running client process in
 * a pod, its progress as it prints it, and a bounded stop that returns its result. The
 * harness starts it (SimFixture.steadyClient) and ends it with the fixture if a test fails.
 */

/** steady-client.js in dist/ (this file runs from dist/src/sim/). */
export const STEADY_CLIENT = join(__dirname, 'apps', 'steady-client.js');

export class SteadyClient<R extends SteadyResult = SteadyResult> {
  private out = '';
  private pending = '';
  private isRunning = false;
  private failure: string | undefined;
  /** The counts of the last progress line. */
  progress: SteadyCounts = { ok: 0, failed: 0, resets: 0, errors: {} };
  result: R | undefined;
  readonly exited: Promise<unknown>;

  constructor(readonly child: ChildProcess, readonly what: string) {
    // 'close': after the last of stdout, so the result line has been read.
    this.exited = once(child, 'close');
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      this.out = (this.out + d).slice(-20_000);
      this.pending += d;
      let nl: number;
      while ((nl = this.pending.indexOf('\n')) >= 0) {
        const line = this.pending.slice(0, nl);
        this.pending = this.pending.slice(nl + 1);
        this.onLine(line);
      }
    });
  }

  private onLine(line: string): void {
    let v: { phase?: string; progress?: SteadyCounts; result?: R; error?: string; message?: string };
    try {
      v = JSON.parse(line);
    } catch {
      return;
    }
    if (v.phase === 'running') this.isRunning = true;
    if (v.progress) this.progress = v.progress;
    if (v.result) {
      this.result = v.result;
      this.progress = v.result;
    }
    if (v.error) this.failure = `${v.error}: ${v.message ?? ''}`;
  }

  /** What it printed last (for error messages). */
  get output(): string {
    return this.out.slice(-1500);
  }

  /** Resolves once its first exchange succeeded; fails if it exits first or `timeoutMs` passes. */
  async running(timeoutMs = 20_000): Promise<void> {
    const ok = await pollUntil(() => this.isRunning || this.child.exitCode !== null || this.child.signalCode !== null, Date.now() + timeoutMs);
    if (!this.isRunning) throw new Error(`${this.what} did not start ${ok ? `(exited ${this.child.exitCode ?? this.child.signalCode})` : `within ${timeoutMs} ms`}: ${this.failure ?? ''} ${this.output}`);
  }

  /** Waits until its progress shows `more` successes past the count it has now. */
  async advance(more: number, timeoutMs = 20_000): Promise<void> {
    const target = this.progress.ok + more;
    if (!(await pollUntil(() => this.progress.ok >= target || this.child.exitCode !== null, Date.now() + timeoutMs))) {
      throw new Error(`${this.what} did not make progress (${this.progress.ok} of ${target} within ${timeoutMs} ms): ${this.output}`);
    }
  }

  /** Writes a line to its stdin (hold mode's `check`). */
  send(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  /**
   * Ends its stdin (it finishes what is in flight and prints its result) and returns the
   * result. A client still running after `timeoutMs` is killed and the call fails.
   */
  async stop(timeoutMs = 60_000): Promise<R> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.stdin!.end();
      try {
        await withDeadline(this.exited, timeoutMs, `${this.what}'s stop`);
      } catch (err) {
        this.child.kill('SIGKILL');
        await this.exited;
        throw new Error(`${(err as Error).message}; it printed: ${this.output}`);
      }
    }
    if (!this.result) throw new Error(`${this.what} printed no result (exit ${this.child.exitCode ?? this.child.signalCode}): ${this.failure ?? ''} ${this.output}`);
    return this.result;
  }
}
