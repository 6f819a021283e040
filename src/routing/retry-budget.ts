/**
 * A retry budget (Finagle / Linkerd style): over a sliding window, retries may add at most
 * `budgetPercent` % of the requests seen, plus a floor of `minRetriesPerSecond` per second
 * of window so that quiet services can still retry. Retries do not count as requests.
 *
 *   allowed retries in the window = minRetriesPerSecond × windowSeconds + budgetPercent% × requests
 *
 * Counts are kept in 100 buckets across the window (memory does not grow with traffic);
 * a bucket leaves the window whole, so expiry is exact to windowMs / 100.
 */
export interface RetryBudgetOptions {
  /** Retries as a percentage of requests in the window. Default 20. */
  budgetPercent?: number;
  /** Retries always allowed, per second of window. Default 10. */
  minRetriesPerSecond?: number;
  /** Window length. Default 10000 ms. */
  windowMs?: number;
}

const BUCKETS = 100;

export class RetryBudget {
  readonly budgetPercent: number;
  readonly minRetriesPerSecond: number;
  readonly windowMs: number;
  private readonly bucketMs: number;
  private readonly ids = new Float64Array(BUCKETS).fill(-Infinity);
  private readonly requests = new Float64Array(BUCKETS);
  private readonly retries = new Float64Array(BUCKETS);

  constructor(opts: RetryBudgetOptions = {}) {
    const budgetPercent = opts.budgetPercent ?? 20;
    const minRetriesPerSecond = opts.minRetriesPerSecond ?? 10;
    const windowMs = opts.windowMs ?? 10_000;
    if (!(budgetPercent >= 0) || !Number.isFinite(budgetPercent)) throw new RangeError(`RetryBudget: budgetPercent must be >= 0, got ${budgetPercent}`);
    if (!(minRetriesPerSecond >= 0) || !Number.isFinite(minRetriesPerSecond)) throw new RangeError(`RetryBudget: minRetriesPerSecond must be >= 0, got ${minRetriesPerSecond}`);
    if (!(windowMs > 0) || !Number.isFinite(windowMs)) throw new RangeError(`RetryBudget: windowMs must be > 0, got ${windowMs}`);
    this.budgetPercent = budgetPercent;
    this.minRetriesPerSecond = minRetriesPerSecond;
    this.windowMs = windowMs;
    this.bucketMs = windowMs / BUCKETS;
  }

  /** Counts one (original, not retried) request. */
  recordRequest(now: number = Date.now()): void {
    this.requests[this.bucket(now)]! += 1;
  }

  /** True (and the retry is counted) when one more retry fits the budget; false otherwise. */
  tryRetry(now: number = Date.now()): boolean {
    const index = this.bucket(now);
    const { requests, retries } = this.totals(now);
    if (retries + 1 > this.allowance(requests)) return false;
    this.retries[index]! += 1;
    return true;
  }

  /** Requests and retries currently in the window, and how many retries it allows. */
  stats(now: number = Date.now()): { requests: number; retries: number; allowed: number } {
    const { requests, retries } = this.totals(now);
    return { requests, retries, allowed: this.allowance(requests) };
  }

  private allowance(requests: number): number {
    return Math.floor((this.minRetriesPerSecond * this.windowMs) / 1000 + (this.budgetPercent / 100) * requests + 1e-9);
  }

  /** The ring slot for `now`, cleared when it last held an older bucket. */
  private bucket(now: number): number {
    const id = Math.floor(now / this.bucketMs);
    const index = ((id % BUCKETS) + BUCKETS) % BUCKETS;
    if (this.ids[index] !== id) {
      this.ids[index] = id;
      this.requests[index] = 0;
      this.retries[index] = 0;
    }
    return index;
  }

  private totals(now: number): { requests: number; retries: number } {
    const current = Math.floor(now / this.bucketMs);
    let requests = 0;
    let retries = 0;
    for (let i = 0; i < BUCKETS; i++) {
      const id = this.ids[i]!;
      if (id > current - BUCKETS && id <= current) {
        requests += this.requests[i]!;
        retries += this.retries[i]!;
      }
    }
    return { requests, retries };
  }
}
