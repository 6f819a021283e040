import { connect, constants as h2c, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect, type SecureContext, type TLSSocket } from 'node:tls';
import { NodemeshError } from '../../errors';
import { tunnelClientOptions } from '../../identity/mtls-options';
import { SessionPool, spokeHttp2 } from '../session-pool';
import { HEADER_ORIGINAL_DESTINATION, HEADER_PROTOCOL, authorityOf } from '../tunnel/tunnel-protocol';

/** Who the source is (its credential) and who must answer (the destination's SPIFFE ID). */
export interface TunnelTls {
  context: SecureContext;
  expectedServerId: string;
}

/**
 * Pooled tunnel sessions: one mTLS HTTP/2 connection per pool key (the caller's: source
 * pod, destination node and identity, source certificate), carrying every stream for it.
 * The connection is opened from inside the source pod's namespace, so the destination
 * node sees the pod's own IP; the TLS handshake presents the source workload's certificate
 * and accepts only a server whose certificate carries the expected identity.
 */
export class TunnelClient {
  private readonly pool = new SessionPool();

  /** `onSession`: one call per session established (one handshake each, never one per request). */
  constructor(private readonly onSession: () => void = () => undefined) {}

  /**
   * Opens a stream to `target` through the node proxy listening on `tunnelAddress`.
   * `openSocket` makes the TCP connection (in the source pod's namespace).
   */
  async open(
    poolKey: string,
    tunnelAddress: { address: string; port: number },
    openSocket: () => Promise<Duplex>,
    target: { address: string; port: number },
    meta: { originalDestination?: string; protocol?: 'tcp' },
    timeoutMs: number,
    tls: TunnelTls,
  ): Promise<Duplex> {
    const session = await this.session(poolKey, tunnelAddress, openSocket, tls, timeoutMs);
    const headers: Record<string, string> = {
      [h2c.HTTP2_HEADER_METHOD]: 'CONNECT',
      [h2c.HTTP2_HEADER_AUTHORITY]: authorityOf(target.address, target.port),
    };
    if (meta.originalDestination) headers[HEADER_ORIGINAL_DESTINATION] = meta.originalDestination;
    if (meta.protocol) headers[HEADER_PROTOCOL] = meta.protocol;
    let stream: ClientHttp2Stream;
    try {
      stream = session.request(headers, { endStream: false });
    } catch (err) {
      // The pooled session heard a GOAWAY since it was handed out: nothing was sent, and
      // the next attempt opens a new session (a connect failure, retried).
      throw new NodemeshError('ERR_NM_TUNNEL_CLOSED', `the tunnel session to ${authorityOf(tunnelAddress.address, tunnelAddress.port)} is going away; no stream for ${authorityOf(target.address, target.port)} was opened`, {
        hint: 'the node proxy there is restarting or draining; the connection is retried on a new session',
        cause: err,
      });
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        stream.close(h2c.NGHTTP2_CANCEL);
        reject(Object.assign(new Error(`tunnel to ${authorityOf(tunnelAddress.address, tunnelAddress.port)} did not answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
      }, timeoutMs);
      stream.once('response', (h) => {
        clearTimeout(timer);
        const status = Number(h[h2c.HTTP2_HEADER_STATUS]);
        if (status === 200) {
          resolve(stream);
          return;
        }
        stream.close();
        // 403: the destination refused this source (PeerAuthentication, authorization, an
        // identity mismatch). Its own code: not a connect failure, so nothing retries it
        // and, above all, nothing falls back to a direct (plaintext) connection, which would
        // arrive without the principal the policy judged.
        if (status === 403) {
          reject(new NodemeshError('ERR_NM_TUNNEL_FORBIDDEN', `the node proxy at ${authorityOf(tunnelAddress.address, tunnelAddress.port)} refused ${authorityOf(target.address, target.port)} to this source (403)`, {
            hint: 'an authorization policy of the destination denies this source; its agent logs the policy (component "authz")',
          }));
          return;
        }
        reject(new NodemeshError('ERR_NM_TUNNEL_REFUSED', `the node proxy at ${authorityOf(tunnelAddress.address, tunnelAddress.port)} refused ${authorityOf(target.address, target.port)} with ${status}`, {
          hint: 'the destination pod may not be enrolled on its node; check `nodemesh status` there',
        }));
      });
      stream.once('error', (err) => {
        clearTimeout(timer);
        // Refused unprocessed (a draining node proxy): a connect failure, retried elsewhere or anew.
        if (stream.rstCode === h2c.NGHTTP2_REFUSED_STREAM) {
          reject(new NodemeshError('ERR_NM_TUNNEL_CLOSED', `the node proxy at ${authorityOf(tunnelAddress.address, tunnelAddress.port)} refused the stream for ${authorityOf(target.address, target.port)} unprocessed`, {
            hint: 'the node proxy there is restarting or draining; the connection is retried on a new session',
            cause: err,
          }));
          return;
        }
        reject(err);
      });
      // A stream closed before its answer (the session destroyed at a drain's deadline, a
      // GOAWAY that refused it) ends without an 'error': fail now, not at the timeout.
      stream.once('close', () => {
        clearTimeout(timer);
        reject(new NodemeshError('ERR_NM_TUNNEL_CLOSED', `the tunnel to ${authorityOf(tunnelAddress.address, tunnelAddress.port)} closed before it answered for ${authorityOf(target.address, target.port)}`, {
          hint: 'the node proxy there may be restarting or draining; the connection is retried (or made directly) as a connect failure',
        }));
      });
    });
  }

  private session(poolKey: string, tunnelAddress: { address: string; port: number }, openSocket: () => Promise<Duplex>, tls: TunnelTls, timeoutMs: number): Promise<ClientHttp2Session> {
    return this.pool.get(poolKey, async () => {
      const socket = await openSocket();
      const secure = await handshake(socket, tls, tunnelAddress, timeoutMs);
      this.onSession();
      const session = connect(`https://${authorityOf(tunnelAddress.address, tunnelAddress.port)}`, { createConnection: () => secure, settings: { enablePush: false } });
      return spokeHttp2(session, `the node proxy at ${authorityOf(tunnelAddress.address, tunnelAddress.port)}`, timeoutMs);
    });
  }

  dropPrefix(prefix: string): void {
    this.pool.dropPrefix(prefix);
  }

  /** Sessions whose keys match take no new streams (a renewed certificate): their streams finish, then they close. */
  retire(matches: (key: string) => boolean): void {
    this.pool.retire(matches);
  }

  /** GOAWAY to every session; what is still open at `deadlineAt` is destroyed (a frozen peer never answers). */
  close(deadlineAt = Date.now()): Promise<void> {
    return this.pool.close(deadlineAt);
  }
}

/** TLS 1.3 over the pod's socket, within the open's deadline; a refused identity is ERR_NM_TUNNEL_TLS. */
function handshake(socket: Duplex, tls: TunnelTls, at: { address: string; port: number }, timeoutMs: number): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const secure = tlsConnect({ socket, ...tunnelClientOptions(tls.context, tls.expectedServerId) });
    const fail = (err: Error & { code?: string }) => {
      clearTimeout(timer);
      secure.destroy();
      socket.destroy();
      reject(new NodemeshError('ERR_NM_TUNNEL_TLS', `mTLS with the node proxy at ${authorityOf(at.address, at.port)} failed: ${err.message}`, {
        hint: 'the peer must present a certificate of the expected workload from this trust bundle; check both agents\' `nodemesh status` (identities) and the CA',
        details: { cause: err.code },
      }));
    };
    const timer = setTimeout(() => fail(Object.assign(new Error(`no handshake within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })), timeoutMs);
    secure.once('secureConnect', () => {
      clearTimeout(timer);
      secure.off('error', fail);
      if (secure.alpnProtocol !== 'h2') {
        fail(new Error(`the peer negotiated ${String(secure.alpnProtocol)}, not h2`));
        return;
      }
      resolve(secure);
    });
    secure.once('error', fail);
  });
}
