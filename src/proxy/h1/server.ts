import type { Socket } from 'node:net';
import type { Logger } from '../../log';
import { H1ServerConnection, type H1Handlers, type H1Limits } from './server-connection';

/**
 * The downstream HTTP/1.1 connections of the proxy. It never listens: sniffed sockets are
 * handed to `serve`. One sweep timer for all connections checks the head, body and
 * keep-alive timeouts, instead of timers per request.
 */
export class H1Server {
  private readonly connections = new Set<H1ServerConnection>();
  private sweep: NodeJS.Timeout | undefined;
  private closing = false;

  constructor(
    private readonly handlers: H1Handlers,
    private readonly limits: H1Limits,
    private readonly log: Logger,
  ) {}

  serve(socket: Socket): void {
    const conn = new H1ServerConnection(socket, this.handlers, this.limits, this.log, (c) => this.forget(c));
    // Draining already: a connection that still arrives (a tunnel stream accepted before the
    // GOAWAY, sniffed meanwhile) has its request on the way; closing it unread would fail
    // that request. It is answered with `connection: close`; one that sends nothing is
    // ended by the head timeout, or with the rest at the drain's deadline.
    if (this.closing) conn.draining = true;
    this.connections.add(conn);
    this.sweep ??= setInterval(() => this.check(), this.checkIntervalMs()).unref();
  }

  get size(): number {
    return this.connections.size;
  }

  /** Checks at a tenth of the head timeout, between 0.1 and 1 s: a slowloris client is cut within 10%. */
  private checkIntervalMs(): number {
    return Math.max(100, Math.min(1000, Math.floor(this.limits.headersTimeoutMs / 10)));
  }

  private check(): void {
    const now = performance.now();
    for (const c of this.connections) c.check(now);
  }

  private forget(c: H1ServerConnection): void {
    this.connections.delete(c);
    if (this.connections.size === 0 && this.sweep) {
      clearInterval(this.sweep);
      this.sweep = undefined;
    }
  }

  /**
   * Agent hand-over: every open connection `which` accepts goes to `take`, detached, once
   * it is idle (the idle ones now, busy ones when their response is written out), until
   * `keepAll`. The others are left alone.
   */
  handOffWhenIdle(take: (socket: Socket) => void, which: (socket: Socket) => boolean = () => true): void {
    for (const c of [...this.connections]) if (which(c.socket)) c.handOffWhenIdle(take);
  }

  /** How many connections are still waiting to be handed off. */
  handingOff(): number {
    let n = 0;
    for (const c of this.connections) if (c.handingOff) n += 1;
    return n;
  }

  /** The hand-over stops waiting: connections not handed yet are served here. */
  keepAll(): void {
    for (const c of this.connections) c.keep();
  }

  /** Stops taking connections; idle ones close now, busy ones after their current response. */
  close(): void {
    this.closing = true;
    for (const c of this.connections) c.drain();
  }
}
