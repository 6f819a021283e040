import { constants as h2c, type Http2Session } from 'node:http2';
import { sleep } from '../util/deadline';

/** The highest stream id there is: a GOAWAY naming it refuses nothing (RFC 9113 §6.8). */
const ANY_STREAM_ID = 2 ** 31 - 1;
/** How long a drain waits for the peer to hear the first GOAWAY (one round trip) at most. */
const GOAWAY_ROUND_TRIP_MAX_MS = 1000;

/**
 * A GOAWAY that loses no stream. A GOAWAY naming the last stream processed refuses the
 * streams the peer sent before it heard of it (they cross on the wire), and a refused
 * stream with a body the proxy streamed cannot be sent again: a gRPC call fails
 * UNAVAILABLE. So, as RFC 9113 §6.8 advises: first a GOAWAY that refuses nothing (the
 * peer stops opening streams here), then, once a PING has gone there and back (every
 * stream it sent before is in) or `waitAtMostMs` passed, the final one (`close()`): the
 * streams in flight finish, then the session closes.
 */
export function goAwayWithoutRefusing(session: Http2Session, waitAtMostMs = GOAWAY_ROUND_TRIP_MAX_MS): void {
  if (session.closed || session.destroyed) return;
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    if (!session.closed && !session.destroyed) session.close();
  };
  const timer = setTimeout(finish, Math.max(0, waitAtMostMs));
  session.once('close', () => clearTimeout(timer));
  session.goaway(h2c.NGHTTP2_NO_ERROR, ANY_STREAM_ID);
  // ping() is false when too many are unanswered already: no round trip to wait for then.
  if (!session.ping(() => finish())) finish();
}

/**
 * Closing HTTP/2 sessions within a deadline. `session.close()` sends GOAWAY and waits for
 * the streams in flight and for the peer to close its side; a frozen or vanished peer
 * never does, and the session (with the process) would stay for ever. So: GOAWAY now,
 * destroy at `deadlineAt` (a Date.now() time) whatever is left.
 */
export function closeSessionBy(session: Http2Session, deadlineAt: number): Promise<void> {
  if (session.destroyed) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      session.destroy();
      // 'close' follows destroy(); resolve anyway on the next turn in case it came already.
      setImmediate(resolve);
    }, Math.max(0, deadlineAt - Date.now()));
    session.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    if (!session.closed) session.close();
  });
}

/**
 * The same for pooled sessions that may still be connecting: one that connects before
 * the deadline is closed as above; one still connecting at the deadline is left to its
 * own connect timeout (its socket is destroyed by the pod's teardown).
 */
export async function closePooledSessionsBy(pending: Iterable<Promise<Http2Session>>, deadlineAt: number): Promise<void> {
  // One backstop for all, cleared once they are closed: a timer left running would hold
  // the process until the deadline for nothing.
  const backstop = new AbortController();
  const waitAtMost = sleep(Math.max(0, deadlineAt - Date.now()) + 100, backstop.signal);
  try {
    await Promise.race([Promise.all([...pending].map((p) => p.then((s) => closeSessionBy(s, deadlineAt), () => undefined))), waitAtMost]);
  } finally {
    backstop.abort();
  }
}

/** Sessions of a server, to GOAWAY them all when it stops (server.close() leaves them open). */
export class SessionSet {
  private readonly sessions = new Set<Http2Session>();
  private goingAway = false;

  add(session: Http2Session): void {
    this.sessions.add(session);
    session.once('close', () => this.sessions.delete(session));
    // One that arrives during the drain (accepted before it, sniffed meanwhile) goes away too.
    if (this.goingAway) goAwayWithoutRefusing(session);
  }

  /**
   * GOAWAY to each, refusing no stream already sent: streams in flight finish, no new ones
   * start. `deadlineAt` (a Date.now() time) bounds the wait for the peer's round trip.
   */
  goAway(deadlineAt = Date.now() + GOAWAY_ROUND_TRIP_MAX_MS): void {
    this.goingAway = true;
    const waitAtMost = Math.min(GOAWAY_ROUND_TRIP_MAX_MS, deadlineAt - Date.now());
    for (const s of this.sessions) goAwayWithoutRefusing(s, waitAtMost);
  }

  /** Destroys whatever is left. */
  destroy(): void {
    for (const s of this.sessions) s.destroy();
    this.sessions.clear();
  }
}
