/**
 * Cancellation of one request (client gone, timeout), cheaper than an AbortController on
 * the hot path: most requests are never cancelled, so the listeners are a plain array and
 * an AbortSignal is made only for the APIs that need one (HTTP/2 streams, waits).
 */
export class Cancellation {
  private listeners: Array<(reason: unknown) => void> | undefined;
  private controller: AbortController | undefined;
  cancelled = false;
  reason: unknown;

  cancel(reason?: unknown): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.reason = reason;
    const listeners = this.listeners;
    this.listeners = undefined;
    if (listeners) for (const fn of listeners) fn(reason);
    this.controller?.abort(reason);
  }

  /** Calls `fn` on cancellation (at once if already cancelled); returns the unsubscribe. */
  onCancel(fn: (reason: unknown) => void): () => void {
    if (this.cancelled) {
      fn(this.reason);
      return noop;
    }
    (this.listeners ??= []).push(fn);
    return () => {
      const i = this.listeners?.indexOf(fn) ?? -1;
      if (i >= 0) this.listeners!.splice(i, 1);
    };
  }

  /** A child that is cancelled with this one, and can be cancelled on its own. */
  child(): { token: Cancellation; detach: () => void } {
    const token = new Cancellation();
    const detach = this.onCancel((r) => token.cancel(r));
    return { token, detach };
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.cancelled) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }
}

function noop(): void {}

/** Resolves after `ms`, or at once when `cancel` fires. */
export function sleep(ms: number, cancel?: Cancellation): Promise<void> {
  if (cancel?.cancelled) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => { off?.(); resolve(); }, ms);
    const off = cancel?.onCancel(() => { clearTimeout(t); resolve(); });
  });
}
