import type { Logger } from '../log';

/**
 * How a long-running command (agent, sidecar) ends on SIGTERM/SIGINT, bounded:
 * - the first signal starts `stop(cut)`: not ready, listeners closed, the drain grace for
 *   what is in flight, then everything destroyed;
 * - a second signal aborts `cut`: the drain ends now and the stop goes straight to
 *   destroying what is left; a third exits at once;
 * - a backstop timer exits the process if the stop has not finished `drainMs + marginMs`
 *   after the first signal (or `CUT_MARGIN_MS` after the second), so that no bug and no
 *   peer can hold the node's rollout until kubelet's SIGKILL.
 * Resolves with the exit code once the stop finished.
 */
export interface StopOnSignalOptions {
  log: Logger;
  drainMs: number;
  /** What the stop may take beyond the drain (releasing capture, closing servers); read at the first signal. */
  marginMs?: number | (() => number);
  /** Logged with the first signal. */
  stopping: string;
  stop(cut: AbortSignal, signal: string): Promise<void>;
  /** Runs after the stop, also when it failed or the backstop fired (pid files). */
  finally?(): void;
  /** Starts the same stop without a signal when it resolves (with what is logged as the signal): the hand-over done. */
  stopWhen?: Promise<string>;
}

/** Beyond the drain, for destroying what is left and closing servers and capture handles. */
export const STOP_MARGIN_MS = 5000;
/** After a second signal: the stop has this long to destroy what is left. */
export const CUT_MARGIN_MS = 2000;

export function stopOnSignal(options: StopOnSignalOptions): Promise<number> {
  const { log } = options;
  return new Promise<number>((done) => {
    let signals = 0;
    let backstop: NodeJS.Timeout | undefined;
    const cut = new AbortController();
    const arm = (ms: number, why: string) => {
      if (backstop) clearTimeout(backstop);
      backstop = setTimeout(() => {
        log.error({ ms }, `${why}: exiting now`);
        options.finally?.();
        process.exit(1);
      }, ms);
      backstop.unref();
    };
    const onSignal = (signal: string) => {
      signals += 1;
      if (signals === 2) {
        log.warn({ signal }, 'second signal: cutting the drain short');
        cut.abort();
        arm(CUT_MARGIN_MS, 'the stop did not finish after the second signal');
        return;
      }
      if (signals > 2) {
        log.warn({ signal }, 'third signal: exiting now');
        options.finally?.();
        process.exit(1);
      }
      log.info({ signal, drainMs: options.drainMs }, options.stopping);
      const margin = typeof options.marginMs === 'function' ? options.marginMs() : options.marginMs ?? STOP_MARGIN_MS;
      arm(options.drainMs + margin, 'the stop did not finish in time');
      const started = Date.now();
      options.stop(cut.signal, signal).then(
        () => { log.info({ ms: Date.now() - started }, 'stopped'); return 0; },
        (err: unknown) => { log.error({ err: String(err) }, 'stop failed'); return 1; },
      ).then((code) => {
        if (backstop) clearTimeout(backstop);
        options.finally?.();
        done(code);
      });
    };
    process.on('SIGTERM', () => onSignal('SIGTERM'));
    process.on('SIGINT', () => onSignal('SIGINT'));
    void options.stopWhen?.then((why) => { if (signals === 0) onSignal(why); });
  });
}
