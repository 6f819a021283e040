import { NodemeshError } from '../../errors';

/**
 * Circuit breaking by concurrency (Envoy's circuit breakers, Istio's connectionPool):
 * at most maxRequests requests of a Service are in flight, at most maxPendingRequests
 * wait for a slot, and anything beyond is refused at once with ERR_NM_OVERFLOW, which
 * the proxy answers with 503 and response flag UO. Nothing here keeps the process alive:
 * waiting is a pending promise, not a timer.
 */

/** Refused by a circuit breaker; the proxy answers 503 with response flag UO. */
export const OVERFLOW = 'ERR_NM_OVERFLOW';
/** The caller's AbortSignal fired while the request waited for a slot. */
export const ABORTED = 'ERR_NM_ABORTED';
/** Envoy's response flag for upstream overflow. */
export const OVERFLOW_RESPONSE_FLAG = 'UO';

export interface ConcurrencyLimits {
  maxRequests: number;
  maxPendingRequests: number;
}

export type Release = () => void;

interface Waiter {
  resolve: (release: Release) => void;
  reject: (err: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

function abortError(signal: AbortSignal): NodemeshError {
  return new NodemeshError(ABORTED, 'gave up waiting for a request slot: the request was aborted', { cause: signal.reason });
}

export class ConcurrencyLimiter {
  private limits: ConcurrencyLimits;
  private activeCount = 0;
  /** FIFO; a Set keeps insertion order and deletes aborted waiters in O(1). */
  private readonly queue = new Set<Waiter>();

  /** `name` (e.g. "Service demo/b") is used in error messages. */
  constructor(
    cfg: ConcurrencyLimits,
    private readonly name = 'upstream',
  ) {
    this.limits = { maxRequests: cfg.maxRequests, maxPendingRequests: cfg.maxPendingRequests };
  }

  get active(): number {
    return this.activeCount;
  }

  get pending(): number {
    return this.queue.size;
  }

  get maxRequests(): number {
    return this.limits.maxRequests;
  }

  get maxPendingRequests(): number {
    return this.limits.maxPendingRequests;
  }

  /**
   * Resolves with release() once the request may go upstream; call it exactly when the
   * request ends (extra calls are ignored). Rejects at once with ERR_NM_OVERFLOW when the
   * queue is full, and with ERR_NM_ABORTED when `signal` fires first (the waiter leaves
   * the queue).
   */
  acquire(signal?: AbortSignal): Promise<Release> {
    if (signal?.aborted) return Promise.reject(abortError(signal));
    if (this.activeCount < this.limits.maxRequests && this.queue.size === 0) {
      this.activeCount += 1;
      return Promise.resolve(this.releaser());
    }
    if (this.queue.size >= this.limits.maxPendingRequests) return Promise.reject(this.overflow());
    return new Promise<Release>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, signal, onAbort: undefined };
      if (signal) {
        waiter.onAbort = () => {
          if (this.queue.delete(waiter)) reject(abortError(signal));
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.queue.add(waiter);
    });
  }

  /** A slot now or undefined; never queues (for callers that cannot wait). */
  tryAcquire(): Release | undefined {
    if (this.activeCount >= this.limits.maxRequests || this.queue.size > 0) return undefined;
    this.activeCount += 1;
    return this.releaser();
  }

  /**
   * New limits, keeping the requests in flight counted. More room admits waiters now;
   * a smaller queue refuses its newest waiters beyond the new maxPendingRequests.
   */
  update(cfg: ConcurrencyLimits): void {
    this.limits = { maxRequests: cfg.maxRequests, maxPendingRequests: cfg.maxPendingRequests };
    this.drain();
    if (this.queue.size > this.limits.maxPendingRequests) {
      const excess = [...this.queue].slice(this.limits.maxPendingRequests);
      for (const waiter of excess) {
        this.queue.delete(waiter);
        this.detach(waiter);
        waiter.reject(this.overflow());
      }
    }
  }

  private overflow(): NodemeshError {
    return new NodemeshError(
      OVERFLOW,
      `${this.name}: overflow: ${this.activeCount} requests in flight (maxRequests ${this.limits.maxRequests}) and ${this.queue.size} waiting (maxPendingRequests ${this.limits.maxPendingRequests})`,
      {
        hint: 'the proxy answers 503 (response flag UO); raise spec.connectionPool.maxRequests or maxPendingRequests of the TrafficPolicy, or scale the Service',
        details: { active: this.activeCount, pending: this.queue.size, ...this.limits, responseFlag: OVERFLOW_RESPONSE_FLAG },
      },
    );
  }

  private releaser(): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.activeCount -= 1;
      this.drain();
    };
  }

  private detach(waiter: Waiter): void {
    if (waiter.signal && waiter.onAbort) waiter.signal.removeEventListener('abort', waiter.onAbort);
  }

  private drain(): void {
    while (this.activeCount < this.limits.maxRequests && this.queue.size > 0) {
      const waiter = this.queue.values().next().value as Waiter;
      this.queue.delete(waiter);
      this.detach(waiter);
      this.activeCount += 1;
      waiter.resolve(this.releaser());
    }
  }
}

/**
 * connectionPool.maxConnections: upstream connections to a Service over all its
 * endpoints. Opening one beyond the limit is refused (the L4 relay closes the client's
 * connection; the HTTP pool waits for a free connection instead of opening one, which the
 * ConcurrencyLimiter's queue bounds).
 */
export class ConnectionLimiter {
  private activeCount = 0;

  constructor(private max: number) {}

  get active(): number {
    return this.activeCount;
  }

  get maxConnections(): number {
    return this.max;
  }

  /** release() or undefined when maxConnections are open. */
  tryAcquire(): Release | undefined {
    if (this.activeCount >= this.max) return undefined;
    this.activeCount += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.activeCount -= 1;
    };
  }

  update(maxConnections: number): void {
    this.max = maxConnections;
  }
}
