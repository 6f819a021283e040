import { createServer as createH2Server, type Http2Server, type Http2Session, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { describeError } from '../../errors';
import type { Logger } from '../../log';
import { SessionSet } from '../http2-close';
import { H1Server } from '../h1/server';
import { resumeReading, stopReading } from '../../datapath/fd-channel';
import type { H1Limits, PendingUpgrade } from '../h1/server-connection';
import type { DownstreamExchange } from './exchange';
import { H2Exchange } from './h2-exchange';
import type { ConnectionInfo } from '../connection-info';
import type { RequestHandler } from './staged-pipeline';

/** The limits on downstream clients (see H1Limits); the HTTP/2 server takes the head size and idle time. */
export const DEFAULT_FRONTEND_LIMITS: H1Limits = {
  maxHeaderSize: 16 * 1024,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 300_000,
  keepAliveTimeoutMs: 60_000,
};

/**
 * Raw pass-through for Upgrade (WebSocket) and CONNECT: open the target for `upgrade`
 * (`upgrade.connect`, or `upgrade.refuse`); the HTTP/1.1 connection sends the head, and
 * relays bytes only once the target has switched.
 */
export type RawPassThrough = (conn: ConnectionInfo, upgrade: PendingUpgrade) => void;

/**
 * The HTTP servers the proxy feeds captured connections into. They never listen: a
 * connection is handed over once sniffing has said what it is. HTTP/1.1 is the proxy's
 * own codec (src/proxy/h1); HTTP/2 is Node's http2 server, fed with emit('connection'),
 * the connection's facts riding along in a WeakMap keyed by the session.
 */
export class HttpFrontend {
  private readonly info = new WeakMap<object, ConnectionInfo>();
  /** The connection being handed to the h2 server (its 'session' event fires synchronously). */
  private pendingH2: ConnectionInfo | undefined;
  private pendingSession: Http2Session | undefined;
  private readonly h1: H1Server;
  private readonly h2: Http2Server;
  private readonly h2Sessions = new SessionSet();

  constructor(
    private readonly pipeline: RequestHandler,
    passThrough: RawPassThrough,
    private readonly log: Logger,
    limits: H1Limits = DEFAULT_FRONTEND_LIMITS,
    onSwitched?: (client: Socket, upstream: Duplex, conn: ConnectionInfo) => void,
  ) {
    this.h1 = new H1Server({
      request: (ex, socket) => this.dispatch(ex, this.info.get(socket)),
      upgrade: (upgrade, socket) => {
        const conn = this.info.get(socket);
        if (!conn) socket.destroy();
        else passThrough(conn, upgrade);
      },
      switched: (socket, upstream) => {
        const conn = this.info.get(socket);
        if (conn) onSwitched?.(socket, upstream, conn);
      },
    }, limits, log);

    this.h2 = createH2Server({ maxHeaderListPairs: 256, maxSessionMemory: 16, settings: { maxHeaderListSize: limits.maxHeaderSize } });
    // An Http2Session's `socket` is a Proxy, never the socket handed over: key h2
    // connections by their session instead.
    this.h2.on('session', (session: Http2Session) => {
      this.h2Sessions.add(session);
      if (!this.pendingH2) return;
      this.info.set(session, this.pendingH2);
      this.pendingSession = session;
    });
    this.h2.on('request', (req: Http2ServerRequest, res: Http2ServerResponse) => {
      const session = req.stream.session;
      this.dispatch(new H2Exchange(req, res), session ? this.info.get(session) : undefined);
    });
    this.h2.on('sessionError', (err: Error) => this.log.debug({ err: describeError(err) }, 'h2 session error'));
    this.h2.setTimeout(limits.keepAliveTimeoutMs);
  }

  private dispatch(ex: DownstreamExchange, conn: ConnectionInfo | undefined): void {
    if (!conn) {
      ex.writeHead(500, {});
      ex.end();
      return;
    }
    this.pipeline.handle(ex, conn).catch((err: unknown) => {
      this.log.error({ err: describeError(err) }, 'request pipeline failed');
      if (!ex.headersSent) {
        ex.writeHead(502, {});
        ex.end();
      } else ex.destroy();
    });
  }

  /**
   * Agent hand-over: each HTTP/1.1 connection goes to `take` (detached, stopped reading)
   * as soon as it is between requests; `pendingHttp1` says how many still wait.
   */
  handOffHttp1(take: (socket: Socket, conn: ConnectionInfo) => void, which: (socket: Socket, conn: ConnectionInfo) => boolean = () => true): void {
    this.h1.handOffWhenIdle((socket) => {
      const conn = this.info.get(socket);
      stopReading(socket);
      if (conn) take(socket, conn);
      else socket.destroy();
    }, (socket) => {
      const conn = this.info.get(socket);
      return conn !== undefined && which(socket, conn);
    });
  }

  pendingHttp1(): number {
    return this.h1.handingOff();
  }

  /** The hand-over stops waiting: what is not handed yet is served (or drained) here. */
  stopHandingOffHttp1(): void {
    this.h1.keepAll();
  }

  /** A connection `handOffHttp1` gave that the next agent did not take: served here again. */
  serveHttp1Again(socket: Socket, conn: ConnectionInfo): void {
    resumeReading(socket);
    this.serveHttp1(socket, conn);
  }

  /** Takes over a sniffed HTTP/1.x connection. */
  serveHttp1(socket: Socket, conn: ConnectionInfo): void {
    this.info.set(socket, { ...conn, protocol: 'http1' });
    this.h1.serve(socket);
    socket.resume();
  }

  /** Takes over a sniffed HTTP/2 prior-knowledge (h2c, gRPC) connection. */
  serveH2(socket: Socket, conn: ConnectionInfo): void {
    this.pendingH2 = { ...conn, protocol: 'h2' };
    this.pendingSession = undefined;
    try {
      this.h2.emit('connection', socket);
    } finally {
      this.pendingH2 = undefined;
    }
    const session = this.pendingSession as Http2Session | undefined;
    this.pendingSession = undefined;
    // The pods' sockets allow half-open (for the TCP relay), and the h2 server never ends
    // a connection the client has ended without a GOAWAY (grpc-js at exit): it would sit
    // in CLOSE_WAIT for ever, and hold up a drain. HTTP/2 has no half-closed connections:
    // let the streams in flight finish, then close.
    socket.once('end', () => {
      if (session && !session.closed && !session.destroyed) session.close(() => socket.destroy());
      else socket.destroy();
    });
    socket.resume();
  }

  /**
   * Stops taking connections (drain): HTTP/1.1 ones close after their current response,
   * HTTP/2 ones get a GOAWAY and close once their streams in flight are done.
   */
  close(): void {
    this.h1.close();
    this.h2.close();
    this.h2Sessions.goAway();
  }

  /** After the drain: every HTTP/2 session still open goes (their sockets go with the pods). */
  destroy(): void {
    this.h2Sessions.destroy();
  }
}
