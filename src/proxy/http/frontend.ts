import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createH2Server, type Http2Server, type Http2Session, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { describeError } from '../../errors';
import type { Logger } from '../../log';
import type { ConnectionInfo, HttpPipeline } from './pipeline';

/** Limits that keep one misbehaving client from hurting the pods that share the proxy. */
export interface FrontendLimits {
  /** Largest request head (431 beyond). */
  maxHeaderSize: number;
  /** Time to receive a complete request head (slowloris); 408 and close after it. */
  headersTimeoutMs: number;
  /** Time to receive a whole request. */
  requestTimeoutMs: number;
  /** Idle keep-alive connections are closed after this. */
  keepAliveTimeoutMs: number;
}

export const DEFAULT_FRONTEND_LIMITS: FrontendLimits = {
  maxHeaderSize: 16 * 1024,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 300_000,
  keepAliveTimeoutMs: 60_000,
};

/** Raw pass-through for Upgrade (WebSocket) and CONNECT: connect to the target, replay the head, pipe. */
export type RawPassThrough = (conn: ConnectionInfo, req: IncomingMessage, socket: Duplex, head: Buffer) => void;

/**
 * The HTTP servers the proxy feeds captured connections into. They never listen: a
 * connection is handed over with emit('connection') once sniffing has said what it is,
 * and the connection's facts ride along in a WeakMap keyed by the socket.
 */
export class HttpFrontend {
  private readonly info = new WeakMap<object, ConnectionInfo>();
  /** The connection being handed to the h2 server (its 'session' event fires synchronously). */
  private pendingH2: ConnectionInfo | undefined;
  private pendingSession: Http2Session | undefined;
  private readonly h1: Server;
  private readonly h2: Http2Server;

  constructor(
    private readonly pipeline: HttpPipeline,
    passThrough: RawPassThrough,
    private readonly log: Logger,
    limits: FrontendLimits = DEFAULT_FRONTEND_LIMITS,
  ) {
    this.h1 = createServer({
      maxHeaderSize: limits.maxHeaderSize,
      requestTimeout: limits.requestTimeoutMs,
      headersTimeout: limits.headersTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      // Node checks the head and request timeouts only this often (30 s by default), so a
      // slowloris client would hold its connection up to 30 s past headersTimeout.
      connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(limits.headersTimeoutMs / 10))),
      noDelay: true,
    });
    this.h1.on('request', (req: IncomingMessage, res: ServerResponse) => this.dispatch(req, res, req.socket));
    this.h1.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.raw(req, socket, head, passThrough));
    this.h1.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.raw(req, socket, head, passThrough));
    this.h1.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
      // Malformed requests (smuggling attempts, oversized heads, timeouts) end here: answer
      // and close, never forward.
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
      this.log.debug({ code: err.code }, 'rejected a malformed request');
      if ((socket as Socket).writable) socket.end(`HTTP/1.1 ${status} ${status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request'}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      socket.destroy();
    });
    // Node starts the head/request timeout checks of a server when it emits 'listening';
    // these servers never listen, so start them here or slowloris goes unchecked.
    this.h1.emit('listening');

    this.h2 = createH2Server({ maxHeaderListPairs: 256, maxSessionMemory: 16, settings: { maxHeaderListSize: limits.maxHeaderSize } });
    // An Http2Session's `socket` is a Proxy, never the socket handed over: key h2
    // connections by their session instead.
    this.h2.on('session', (session: Http2Session) => {
      if (!this.pendingH2) return;
      this.info.set(session, this.pendingH2);
      this.pendingSession = session;
    });
    this.h2.on('request', (req: Http2ServerRequest, res: Http2ServerResponse) => this.dispatch(req, res, req.stream.session ?? undefined));
    this.h2.on('sessionError', (err: Error) => this.log.debug({ err: describeError(err) }, 'h2 session error'));
    this.h2.setTimeout(limits.keepAliveTimeoutMs);
  }

  private dispatch(req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse, socket: object | undefined): void {
    const conn = socket ? this.info.get(socket) : undefined;
    if (!conn) {
      res.writeHead(500);
      res.end();
      return;
    }
    this.pipeline.handle(req, res, conn).catch((err: unknown) => {
      this.log.error({ err: describeError(err) }, 'request pipeline failed');
      if (!res.headersSent) {
        res.writeHead(502);
        res.end();
      } else res.destroy();
    });
  }

  private raw(req: IncomingMessage, socket: Duplex, head: Buffer, passThrough: RawPassThrough): void {
    const conn = this.info.get(req.socket);
    if (!conn) {
      socket.destroy();
      return;
    }
    passThrough(conn, req, socket, head);
  }

  /** Takes over a sniffed HTTP/1.x connection. */
  serveHttp1(socket: Socket, conn: ConnectionInfo): void {
    this.info.set(socket, { ...conn, protocol: 'http1' });
    this.h1.emit('connection', socket);
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

  /** Stops taking connections; open ones finish their current request (drain). */
  close(): void {
    this.h1.closeIdleConnections();
    this.h1.close();
    this.h2.close();
  }
}
