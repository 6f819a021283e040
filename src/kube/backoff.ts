/**
 * Exponential backoff with jitter, capped: what a watch reconnects with after a failure.
 * The n-th delay is drawn from [base/2, base] with base = min(maxMs, initialMs * factor^n)
 * ("equal jitter"): it always grows, and agents that lost the API server together do not
 * come back together.
 */

export interface BackoffOptions {
  /** First delay (ms, default 200). */
  initialMs?: number;
  /** Cap (ms, default 30000). */
  maxMs?: number;
  /** Growth per failure (default 2). */
  factor?: number;
  /** Random source in [0, 1) (tests make it deterministic). */
  random?: () => number;
}

export class Backoff {
  private attempt = 0;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly random: () => number;

  constructor(options: BackoffOptions = {}) {
    this.initialMs = options.initialMs ?? 200;
    this.maxMs = options.maxMs ?? 30_000;
    this.factor = options.factor ?? 2;
    this.random = options.random ?? Math.random;
  }

  /** The delay before the next attempt; each call counts one more failure. */
  next(): number {
    const base = Math.min(this.maxMs, this.initialMs * this.factor ** this.attempt);
    this.attempt += 1;
    return Math.round(base / 2 + (this.random() * base) / 2);
  }

  /** Failures in a row so far. */
  get failures(): number {
    return this.attempt;
  }

  /** After a success: the next failure waits initialMs again. */
  reset(): void {
    this.attempt = 0;
  }
}
