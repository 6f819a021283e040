import type { RateLimitConfig, TokenBucketConfig } from './traffic-policy';

/**
 * Local rate limiting (Envoy's local_ratelimit token bucket). Each node proxy enforces
 * its own buckets: a Service's limit applies per node proxy, not cluster-wide, so N
 * nodes sending to it admit up to N times the rate (as with Envoy and Istio local rate
 * limits). A refused request gets 429 (response flag RL).
 */

export const RATE_LIMITED_RESPONSE_FLAG = 'RL';

/**
 * Starts full. Every whole fillInterval adds tokensPerFill, up to maxTokens; fills are
 * discrete, as in Envoy (a bucket of 10 per second does not drip one every 100ms).
 */
export class TokenBucket {
  private available: number;
  private lastFill: number;

  constructor(
    private readonly cfg: TokenBucketConfig,
    private readonly now: () => number,
  ) {
    this.available = cfg.maxTokens;
    this.lastFill = now();
  }

  private refill(now: number): void {
    // A clock that went back restarts the interval rather than stalling the bucket.
    if (now < this.lastFill) this.lastFill = now;
    const fills = Math.floor((now - this.lastFill) / this.cfg.fillIntervalMs);
    if (fills <= 0) return;
    this.available = Math.min(this.cfg.maxTokens, this.available + fills * this.cfg.tokensPerFill);
    this.lastFill += fills * this.cfg.fillIntervalMs;
  }

  /** Takes `count` tokens if there are that many. */
  tryTake(count = 1): boolean {
    this.refill(this.now());
    if (this.available < count) return false;
    this.available -= count;
    return true;
  }

  /** Tokens available now. */
  get tokens(): number {
    this.refill(this.now());
    return this.available;
  }

  /** Full again: indistinguishable from a new bucket, so it can be forgotten. */
  get full(): boolean {
    return this.tokens >= this.cfg.maxTokens;
  }
}

export interface RateLimiterOptions {
  /** Hard cap on per-source buckets; beyond it the least recently used one is dropped. Default 10,000. */
  maxBuckets?: number;
}

/** The bucket used for requests whose source workload is unknown (perSourceWorkload mode). */
export const UNKNOWN_SOURCE = '';

/**
 * One bucket for every source, or (perSourceWorkload) one per source workload so that a
 * noisy workload exhausts only its own bucket. Requests without a known source share one
 * bucket. Memory stays bounded: a bucket that has filled up again is dropped (a new one
 * would be the same), checked at most once per fill interval, and beyond maxBuckets the
 * least recently used bucket goes.
 */
export class RateLimiter {
  private readonly shared: TokenBucket | undefined;
  /** Insertion order = least recently used first (an entry is re-inserted on use). */
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly maxBuckets: number;
  private nextSweep: number;

  constructor(
    private readonly cfg: RateLimitConfig,
    private readonly now: () => number,
    options: RateLimiterOptions = {},
  ) {
    this.maxBuckets = Math.max(1, options.maxBuckets ?? 10_000);
    this.shared = cfg.perSourceWorkload ? undefined : new TokenBucket(cfg.tokenBucket, now);
    this.nextSweep = now() + cfg.tokenBucket.fillIntervalMs;
  }

  /** Buckets held now (per-source mode); for tests and /debug. */
  get bucketCount(): number {
    return this.buckets.size;
  }

  tryTake(sourceWorkload: string | undefined): boolean {
    if (this.shared) return this.shared.tryTake();
    const now = this.now();
    if (now >= this.nextSweep) this.sweep(now);
    const key = sourceWorkload ?? UNKNOWN_SOURCE;
    let bucket = this.buckets.get(key);
    if (bucket) this.buckets.delete(key);
    else {
      bucket = new TokenBucket(this.cfg.tokenBucket, this.now);
      if (this.buckets.size >= this.maxBuckets) this.buckets.delete(this.buckets.keys().next().value as string);
    }
    this.buckets.set(key, bucket);
    return bucket.tryTake();
  }

  private sweep(now: number): void {
    this.nextSweep = now + this.cfg.tokenBucket.fillIntervalMs;
    for (const [key, bucket] of this.buckets) if (bucket.full) this.buckets.delete(key);
  }
}
