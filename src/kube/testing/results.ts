/**
 * Collects what a source reports and waits, with a timeout, for a report that satisfies a
 * condition. The last report counts too, so a condition that already holds returns at once.
 */
export class ResultLog<T> {
  readonly all: T[] = [];
  private waiters: Array<{ test: (r: T) => boolean; resolve: (r: T) => void }> = [];

  readonly push = (result: T): void => {
    this.all.push(result);
    for (const w of [...this.waiters]) {
      if (w.test(result)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(result);
      }
    }
  };

  get last(): T | undefined {
    return this.all[this.all.length - 1];
  }

  until(test: (r: T) => boolean, what: string, timeoutMs = 5000): Promise<T> {
    const last = this.last;
    if (last !== undefined && test(last)) return Promise.resolve(last);
    return new Promise((resolve, reject) => {
      const waiter = {
        test,
        resolve: (r: T) => {
          clearTimeout(timer);
          resolve(r);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} (${this.all.length} reports)`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }
}

/** Polls a condition every 10 ms until it holds, or fails after timeoutMs. */
export async function eventually<T>(probe: () => T | undefined | false, what: string, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
