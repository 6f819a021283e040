import { NodemeshError } from '../errors';

/**
 * Bounded waits. Every wait in nodemesh has a deadline (a frozen peer, a command that
 * never returns, a client that never reads must not keep a process from finishing): these
 * helpers give a promise one, and say what was awaited when it passes.
 */

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted || ms <= 0) {
      resolve();
      return;
    }
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });
}

/**
 * Settles like `work`, or rejects with ERR_NM_DEADLINE naming `what` once `ms` have
 * passed. `work` itself is not cancelled: the caller decides what to destroy.
 */
export function withDeadline<T>(work: Promise<T>, ms: number, what: string, hint?: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new NodemeshError('ERR_NM_DEADLINE', `${what} did not finish within ${ms} ms`, { ...(hint ? { hint } : {}), details: { what, ms } }));
    }, Math.max(0, ms));
    work.then(
      (value) => { clearTimeout(timer); resolve(value); },
      (err: unknown) => { clearTimeout(timer); reject(err); },
    );
  });
}

/**
 * Polls `done` every `everyMs` until it is true, `deadlineAt` (a Date.now() time) has
 * passed, or `signal` aborts. Resolves true when `done` became true.
 */
export async function pollUntil(done: () => boolean, deadlineAt: number, signal?: AbortSignal, everyMs = 50): Promise<boolean> {
  for (;;) {
    if (done()) return true;
    const left = deadlineAt - Date.now();
    if (left <= 0 || signal?.aborted) return false;
    await sleep(Math.min(everyMs, left), signal);
  }
}
