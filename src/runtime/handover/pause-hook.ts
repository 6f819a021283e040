import type { Logger } from '../../log';
import { sleep } from '../../util/deadline';

/**
 * A test hook: `NODEMESH_HANDOVER_PAUSE_AT=<point>` makes a receiving agent stop at that
 * point of the hand-over for `NODEMESH_HANDOVER_PAUSE_MS` (default 20000) and show it in
 * `/debug/handover` (`pausedAt`), so a test can SIGKILL it there deterministically.
 * Points: `after-listeners` (every listener received and adopted, before the sender is
 * told), `after-half-connections` (the first batch of relays adopted, the rest not).
 */
export type PausePoint = 'after-listeners' | 'after-half-connections';

export const PAUSE_POINTS: readonly PausePoint[] = ['after-listeners', 'after-half-connections'];

export async function pauseAt(point: PausePoint, log: Logger, show: (point: string | undefined) => void): Promise<void> {
  if (process.env.NODEMESH_HANDOVER_PAUSE_AT !== point) return;
  const ms = Number(process.env.NODEMESH_HANDOVER_PAUSE_MS ?? 20_000);
  log.warn({ point, ms }, 'hand-over paused by NODEMESH_HANDOVER_PAUSE_AT (test hook)');
  show(point);
  await sleep(Number.isFinite(ms) && ms >= 0 ? ms : 20_000);
  show(undefined);
}
