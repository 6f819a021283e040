import { createServer, constants as h2c, type Http2Server, type Http2Session, type ServerHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { describeError } from '../../errors';
import type { Logger } from '../../log';
import { SessionSet } from '../http2-close';
import { HEADER_SOURCE_WORKLOAD, parseAuthority } from '../tunnel/tunnel-protocol';

export interface TunnelDelivery {
  /** Opens a connection to a pod of this node (from inside its namespace), or rejects
   * with an HTTP status when the destination is not served here. */
  deliver(target: { address: string; port: number }, meta: { sourceWorkload?: string; peer: string }): Promise<Duplex>;
  /** A delivered stream ended: bytesIn came from the tunnel (the source), bytesOut from the pod. */
  onStream?(info: { target: { address: string; port: number }; sourceWorkload?: string; peer: string; startedAt: number; bytesIn: number; bytesOut: number; durationMs: number; error?: string }): void;
}

/**
 * The receiving end of the tunnel: an HTTP/2 server fed with the connections accepted on
 * every enrolled pod's 15008 listener. Each CONNECT stream is delivered to the named pod
 * of this node; anything else is refused (the proxy is never an open relay).
 */
export class TunnelServer {
  private readonly server: Http2Server;
  private readonly sessions = new SessionSet();

  constructor(private readonly delivery: TunnelDelivery, private readonly log: Logger) {
    this.server = createServer({ settings: { enableConnectProtocol: false } });
    this.server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => this.onStream(stream, headers));
    this.server.on('session', (session: Http2Session) => this.sessions.add(session));
    this.server.on('sessionError', (err: Error) => this.log.debug({ err: describeError(err) }, 'tunnel session error'));
  }

  accept(socket: Socket): void {
    this.server.emit('connection', socket);
  }

  private onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    stream.on('error', () => undefined);
    if (headers[h2c.HTTP2_HEADER_METHOD] !== 'CONNECT') {
      stream.respond({ [h2c.HTTP2_HEADER_STATUS]: 405 }, { endStream: true });
      return;
    }
    const target = parseAuthority(headers[h2c.HTTP2_HEADER_AUTHORITY] as string | undefined);
    if (!target) {
      stream.respond({ [h2c.HTTP2_HEADER_STATUS]: 400 }, { endStream: true });
      return;
    }
    const sourceWorkload = headers[HEADER_SOURCE_WORKLOAD] as string | undefined;
    const peer = `${stream.session?.socket?.remoteAddress ?? '?'}`;
    const started = Date.now();
    this.delivery.deliver(target, { ...(sourceWorkload ? { sourceWorkload } : {}), peer }).then(
      (upstream) => {
        stream.respond({ [h2c.HTTP2_HEADER_STATUS]: 200 });
        let bytesIn = 0;
        let bytesOut = 0;
        stream.on('data', (c: Buffer) => { bytesIn += c.length; });
        upstream.on('data', (c: Buffer) => { bytesOut += c.length; });
        stream.pipe(upstream);
        upstream.pipe(stream);
        let done = false;
        const finish = (error?: string) => {
          if (done) return;
          done = true;
          this.delivery.onStream?.({ target, ...(sourceWorkload ? { sourceWorkload } : {}), peer, startedAt: started, bytesIn, bytesOut, durationMs: Date.now() - started, ...(error ? { error } : {}) });
        };
        upstream.on('error', (err) => { finish(describeError(err)); stream.close(h2c.NGHTTP2_CONNECT_ERROR); });
        stream.on('close', () => { upstream.destroy(); finish(); });
        upstream.on('close', () => { if (!stream.closed) stream.end(); });
      },
      (err: unknown) => {
        const status = (err as { status?: number }).status ?? 502;
        this.log.debug({ target, err: describeError(err) }, 'tunnel stream refused');
        if (!stream.closed) stream.respond({ [h2c.HTTP2_HEADER_STATUS]: status }, { endStream: true });
      },
    );
  }

  /** Drain: GOAWAY to every session (streams in flight go on; the sources open new sessions elsewhere). */
  close(): void {
    this.server.close();
    this.sessions.goAway();
  }

  /** After the drain: whatever is left goes. */
  destroy(): void {
    this.sessions.destroy();
  }
}
