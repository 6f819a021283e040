/**
 * Publishes the latest of a series of values somewhere that can fail (an API server):
 * one write at a time, a newer value replaces one not yet written, and a failed write is
 * retried after `retryMs` until it succeeds or `stop()` is called. Nothing waits on it, so
 * a slow or absent peer never holds up its caller.
 */
export class LatestValuePublisher<T> {
  private pending: { value: T } | undefined;
  private writing = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly write: (value: T) => Promise<void>,
    private readonly onError: (err: unknown, retryMs: number) => void,
    private readonly retryMs = 10_000,
  ) {}

  publish(value: T): void {
    if (this.stopped) return;
    this.pending = { value };
    if (!this.timer) void this.flush();
  }

  /** True while a value is waiting to be written (for tests and status). */
  get busy(): boolean {
    return this.writing || this.pending !== undefined;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.wakeIdle();
  }

  /**
   * Resolves true once the latest value is written, false when `timeoutMs` passes first
   * (a failing write keeps being retried until then) or the publisher is stopped.
   */
  whenWritten(timeoutMs: number): Promise<boolean> {
    if (!this.busy) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.idleWaiters.push(() => {
        clearTimeout(timer);
        resolve(!this.busy);
      });
    });
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private async flush(): Promise<void> {
    if (this.writing || this.stopped || !this.pending) return;
    const { value } = this.pending;
    this.pending = undefined;
    this.writing = true;
    try {
      await this.write(value);
    } catch (err) {
      this.pending ??= { value };
      this.onError(err, this.retryMs);
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush();
      }, this.retryMs);
      this.timer.unref();
      return;
    } finally {
      this.writing = false;
    }
    if (this.pending) void this.flush();
    else this.wakeIdle();
  }
}
