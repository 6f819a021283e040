import { connect, constants as h2c, type ClientHttp2Session } from 'node:http2';
import type { Duplex } from 'node:stream';
import { NodemeshError } from '../../errors';
import { SessionPool } from '../session-pool';
import { HEADER_ORIGINAL_DESTINATION, HEADER_SOURCE_WORKLOAD, authorityOf } from '../tunnel/tunnel-protocol';

/**
 * Pooled tunnel sessions: one HTTP/2 connection per (source pod, destination node),
 * carrying every stream from that pod to pods on that node. The connection is opened
 * from inside the source pod's namespace, so the destination node sees the pod's own IP.
 */
export class TunnelClient {
  private readonly pool = new SessionPool();

  /**
   * Opens a stream to `target` through the node proxy listening on `tunnelAddress`.
   * `openSocket` makes the TCP connection (in the source pod's namespace).
   */
  async open(
    poolKey: string,
    tunnelAddress: { address: string; port: number },
    openSocket: () => Promise<Duplex>,
    target: { address: string; port: number },
    meta: { sourceWorkload?: string; originalDestination?: string },
    timeoutMs: number,
  ): Promise<Duplex> {
    const session = await this.session(poolKey, tunnelAddress, openSocket);
    const headers: Record<string, string> = {
      [h2c.HTTP2_HEADER_METHOD]: 'CONNECT',
      [h2c.HTTP2_HEADER_AUTHORITY]: authorityOf(target.address, target.port),
    };
    if (meta.sourceWorkload) headers[HEADER_SOURCE_WORKLOAD] = meta.sourceWorkload;
    if (meta.originalDestination) headers[HEADER_ORIGINAL_DESTINATION] = meta.originalDestination;
    const stream = session.request(headers, { endStream: false });
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
        reject(new NodemeshError('ERR_NM_TUNNEL_REFUSED', `the node proxy at ${authorityOf(tunnelAddress.address, tunnelAddress.port)} refused ${authorityOf(target.address, target.port)} with ${status}`, {
          hint: 'the destination pod may not be enrolled on its node; check `nodemesh status` there',
        }));
      });
      stream.once('error', (err) => {
        clearTimeout(timer);
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

  private session(poolKey: string, tunnelAddress: { address: string; port: number }, openSocket: () => Promise<Duplex>): Promise<ClientHttp2Session> {
    return this.pool.get(poolKey, () =>
      openSocket().then((socket) => connect(`http://${authorityOf(tunnelAddress.address, tunnelAddress.port)}`, { createConnection: () => socket, settings: { enablePush: false } })));
  }

  dropPrefix(prefix: string): void {
    this.pool.dropPrefix(prefix);
  }

  /** GOAWAY to every session; what is still open at `deadlineAt` is destroyed (a frozen peer never answers). */
  close(deadlineAt = Date.now()): Promise<void> {
    return this.pool.close(deadlineAt);
  }
}
