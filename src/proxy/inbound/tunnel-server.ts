import { createSecureServer, constants as h2c, type Http2SecureServer, type Http2Session, type ServerHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { describeError } from '../../errors';
import { peerSpiffeId, TUNNEL_ALPN } from '../../identity/mtls-options';
import type { Logger } from '../../log';
import { SessionSet } from '../http2-close';
import { HEADER_ORIGINAL_DESTINATION, HEADER_PROTOCOL, parseAuthority } from '../tunnel/tunnel-protocol';

/** Who is at either end of an authenticated tunnel session. */
export interface TunnelPeer {
  /** The source's SPIFFE ID, from its verified client certificate (never from a header). */
  peerIdentity: string;
  /** The identity this end presented (the pod whose 15008 accepted the connection). */
  listenerIdentity: string;
  /** The peer address (the source pod's IP). */
  peer: string;
  peerPort?: number;
  /** What the source says of the stream (its CONNECT headers): the address its app asked for, "ip:port"; telemetry only. */
  originalDestination?: string;
  /** "tcp" when the source relays unparsed bytes (HEADER_PROTOCOL); telemetry only. */
  sourceProtocol?: 'tcp';
}

/**
 * A stream the proxy reads itself rather than relays (HTTP for a pod whose policies need
 * L7): `serve` is given the stream once the CONNECT is answered 200. It resolves with an
 * upstream to relay to when the stream turns out not to be HTTP and may go on as bytes,
 * undefined when it took the stream over, and rejects to reset it.
 */
export interface ServedStream {
  serve(stream: Duplex): Promise<Duplex | undefined>;
}

export interface TunnelDelivery {
  /** Opens a connection to a pod of this node (from inside its namespace), or a ServedStream;
   * rejects with an HTTP status when the destination is not served here or not authorized. */
  deliver(target: { address: string; port: number }, meta: TunnelPeer): Promise<Duplex | ServedStream>;
  /** A delivered stream ended: bytesIn came from the tunnel (the source), bytesOut from the pod. */
  onStream?(info: TunnelPeer & { target: { address: string; port: number }; startedAt: number; bytesIn: number; bytesOut: number; durationMs: number; error?: string }): void;
  /** A connection on 15008 that did not complete mutual TLS (no certificate, an untrusted one, not h2). */
  onHandshakeFailure?(reason: string, peer: string): void;
}

/** The credential a pod's 15008 presents (and the roots it checks clients against). */
export interface ListenerCredential {
  listenerIdentity: string;
  chainPem: string;
  keyPem: string;
  trustBundlePem: string;
  /** Changes with every renewal or new bundle: a new TLS server is made for it. */
  generation: number;
}

/** How long a peer may take to complete the TLS handshake on 15008. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * The receiving end of the tunnel: every enrolled pod's 15008 listener hands its
 * connections here with that pod's credential. Mutual TLS 1.3 first (a client
 * certificate from the trust bundle is required; anything else is closed before a byte of
 * HTTP/2), then HTTP/2 whose CONNECT streams are delivered to the named pod of this node —
 * only one with the identity this end presented, so a client's check of the server
 * certificate means what it says. Never an open relay. One TLS server per credential
 * (node's TLS server takes one certificate); sessions outlive a renewal on the old one.
 */
export class TunnelServer {
  private readonly servers = new Map<string, { generation: number; server: Http2SecureServer }>();
  private readonly sessions = new SessionSet();

  constructor(private readonly delivery: TunnelDelivery, private readonly log: Logger) {}

  /** A connection accepted on the 15008 of a pod whose credential is `credential`. */
  accept(socket: Socket, credential: ListenerCredential): void {
    this.serverFor(credential).emit('connection', socket);
  }

  private serverFor(c: ListenerCredential): Http2SecureServer {
    const held = this.servers.get(c.listenerIdentity);
    if (held && held.generation === c.generation) return held.server;
    const server = createSecureServer({
      cert: c.chainPem,
      key: c.keyPem,
      ca: c.trustBundlePem,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
      ALPNProtocols: TUNNEL_ALPN,
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      settings: { enableConnectProtocol: false },
    });
    server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => this.onStream(stream, headers, c.listenerIdentity));
    server.on('session', (session: Http2Session) => this.sessions.add(session));
    server.on('sessionError', (err: Error) => this.log.debug({ err: describeError(err) }, 'tunnel session error'));
    server.on('tlsClientError', (err: Error, tls: TLSSocket) => this.refused(describeError(err), tls.remoteAddress ?? '?'));
    server.on('unknownProtocol', (tls: TLSSocket) => {
      this.refused(`ALPN ${String(tls.alpnProtocol)}, not h2`, tls.remoteAddress ?? '?');
      tls.destroy();
    });
    this.servers.set(c.listenerIdentity, { generation: c.generation, server });
    return server;
  }

  private refused(reason: string, peer: string): void {
    this.delivery.onHandshakeFailure?.(reason, peer);
    this.log.info({ peer, reason }, 'tunnel connection refused: no mutual TLS');
  }

  private onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, listenerIdentity: string): void {
    stream.on('error', () => undefined);
    // The session's socket is the TLS socket (http2's proxy reads its properties through);
    // rejectUnauthorized already refused a certificate that does not chain to the bundle.
    const tls = stream.session?.socket as TLSSocket | undefined;
    const peerIdentity = tls ? peerSpiffeId(tls) : undefined;
    if (!tls || !peerIdentity) {
      this.refused('the client certificate carries no SPIFFE ID', tls?.remoteAddress ?? '?');
      stream.respond({ [h2c.HTTP2_HEADER_STATUS]: 403 }, { endStream: true });
      stream.session?.destroy();
      return;
    }
    const original = headers[HEADER_ORIGINAL_DESTINATION];
    const who: TunnelPeer = {
      peerIdentity,
      listenerIdentity,
      peer: tls.remoteAddress ?? '?',
      ...(tls.remotePort !== undefined ? { peerPort: tls.remotePort } : {}),
      ...(typeof original === 'string' ? { originalDestination: original } : {}),
      ...(headers[HEADER_PROTOCOL] === 'tcp' ? { sourceProtocol: 'tcp' as const } : {}),
    };
    if (headers[h2c.HTTP2_HEADER_METHOD] !== 'CONNECT') {
      stream.respond({ [h2c.HTTP2_HEADER_STATUS]: 405 }, { endStream: true });
      return;
    }
    const target = parseAuthority(headers[h2c.HTTP2_HEADER_AUTHORITY] as string | undefined);
    if (!target) {
      stream.respond({ [h2c.HTTP2_HEADER_STATUS]: 400 }, { endStream: true });
      return;
    }
    const started = Date.now();
    this.delivery.deliver(target, who).then(
      async (delivered) => {
        if (stream.closed) {
          if (!('serve' in delivered)) delivered.destroy();
          return;
        }
        stream.respond({ [h2c.HTTP2_HEADER_STATUS]: 200 });
        const upstream = 'serve' in delivered ? await delivered.serve(stream).catch((err: unknown) => {
          this.log.debug({ target, err: describeError(err) }, 'tunnel stream refused after the CONNECT');
          if (!stream.closed) stream.close(h2c.NGHTTP2_REFUSED_STREAM);
          return undefined;
        }) : delivered;
        if (!upstream) return;
        if (stream.closed) {
          upstream.destroy();
          return;
        }
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
          this.delivery.onStream?.({ target, ...who, startedAt: started, bytesIn, bytesOut, durationMs: Date.now() - started, ...(error ? { error } : {}) });
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
    this.servers.clear();
    this.sessions.goAway();
  }

  /** After the drain: whatever is left goes. */
  destroy(): void {
    this.sessions.destroy();
  }
}
