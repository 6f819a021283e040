import type { Http2Session } from 'node:http2';
import { sleep } from '../util/deadline';

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

  add(session: Http2Session): void {
    this.sessions.add(session);
    session.once('close', () => this.sessions.delete(session));
  }

  /** GOAWAY to each: streams in flight finish, no new ones start. */
  goAway(): void {
    for (const s of this.sessions) if (!s.closed && !s.destroyed) s.close();
  }

  /** Destroys whatever is left. */
  destroy(): void {
    for (const s of this.sessions) s.destroy();
    this.sessions.clear();
  }
}
