import type { ClientHttp2Session } from 'node:http2';
import { closePooledSessionsBy } from './http2-close';

/**
 * Client HTTP/2 sessions pooled by key (upstream h2c/gRPC sessions, tunnel sessions): one
 * connection per key, carrying every stream for it. A session that closes, errs or gets a
 * GOAWAY is forgotten, and the next request for its key opens a new one.
 */
export class SessionPool {
  private readonly sessions = new Map<string, Promise<ClientHttp2Session>>();
  /** Retired sessions still finishing their streams: a stop closes them too. */
  private readonly retired = new Set<Promise<ClientHttp2Session>>();

  /** The session pooled under `key`, or one that `open` makes (still connecting is shared too). */
  get(key: string, open: () => Promise<ClientHttp2Session>): Promise<ClientHttp2Session> {
    let pending = this.sessions.get(key);
    if (pending) return pending;
    const forget = () => { if (this.sessions.get(key) === pending) this.sessions.delete(key); };
    pending = open().then((session) => {
      session.once('close', forget);
      session.once('goaway', forget);
      // A session error also ends the session; without a listener it would be thrown.
      session.on('error', forget);
      return session;
    });
    pending.catch(forget);
    this.sessions.set(key, pending);
    return pending;
  }

  /** Destroys every session whose key starts with `prefix` (a pod released: its connections must not outlive it). */
  dropPrefix(prefix: string): void {
    for (const [k, p] of [...this.sessions]) {
      if (!k.startsWith(prefix)) continue;
      this.sessions.delete(k);
      p.then((s) => s.destroy(), () => undefined);
    }
  }

  /**
   * Sessions whose keys match leave the pool gracefully: GOAWAY, their streams in
   * flight finish, the next request opens a new session (a renewed certificate).
   */
  retire(matches: (key: string) => boolean): void {
    for (const [k, p] of [...this.sessions]) {
      if (!matches(k)) continue;
      this.sessions.delete(k);
      this.retired.add(p);
      p.then((s) => {
        s.once('close', () => this.retired.delete(p));
        if (s.destroyed) this.retired.delete(p);
        else if (!s.closed) s.close();
      }, () => this.retired.delete(p));
    }
  }

  /** GOAWAY to every session; what is still open at `deadlineAt` is destroyed (a frozen peer never answers). */
  async close(deadlineAt = Date.now()): Promise<void> {
    const all = [...this.sessions.values(), ...this.retired];
    this.sessions.clear();
    this.retired.clear();
    await closePooledSessionsBy(all, deadlineAt);
  }
}

/**
 * Resolves with `session` once the peer's SETTINGS arrived (it speaks HTTP/2 and is
 * alive); rejects with ETIMEDOUT (a connect failure, retried) and destroys it when they do
 * not come within `timeoutMs`. Pooled before that proof, a session to a peer that accepted
 * the connection but never serves it (an agent that stopped during a hand-over) would
 * hold every request for its key until each timed out.
 */
export function spokeHttp2(session: ClientHttp2Session, peer: string, timeoutMs: number): Promise<ClientHttp2Session> {
  // Called at once after connect(): no frame can have arrived yet.
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      clearTimeout(timer);
      session.off('remoteSettings', onSettings);
      session.off('close', onClose);
      session.off('error', onError);
      if (err) {
        session.destroy();
        reject(err);
      } else resolve(session);
    };
    const onSettings = () => done();
    const onClose = () => done(Object.assign(new Error(`${peer} closed the HTTP/2 connection before its settings`), { code: 'ECONNREFUSED' }));
    const onError = (err: Error) => done(Object.assign(new Error(`${peer}: ${err.message}`), { code: 'ECONNREFUSED', cause: err }));
    const timer = setTimeout(() => done(Object.assign(new Error(`${peer} sent no HTTP/2 settings within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })), timeoutMs);
    session.once('remoteSettings', onSettings);
    session.once('close', onClose);
    session.once('error', onError);
  });
}
