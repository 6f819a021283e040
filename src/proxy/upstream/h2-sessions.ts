import { connect, type ClientHttp2Session } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { UpstreamTransport } from './transport';
import { SessionPool, spokeHttp2 } from '../session-pool';
import { formatHostPort } from '../../util/host-port';

const CONNECT_TIMEOUT_MS = 5000;

/**
 * HTTP/2 (h2c, gRPC) upstream sessions, one per (transport, endpoint), multiplexing every
 * stream to that endpoint over one connection. A session that closes or errors is
 * forgotten and the next request opens a new one.
 */
export class H2Sessions {
  private readonly pool = new SessionPool();

  get(transport: UpstreamTransport, address: string, port: number): Promise<ClientHttp2Session> {
    return this.pool.get(`${transport.key}|${address}|${port}`, () =>
      transport.open({ address, port }, CONNECT_TIMEOUT_MS).then((stream: Duplex) =>
        spokeHttp2(connect(`http://${formatHostPort(address, port)}`, { createConnection: () => stream }), formatHostPort(address, port), CONNECT_TIMEOUT_MS)));
  }

  async dropTransport(transportKey: string): Promise<void> {
    this.pool.dropPrefix(`${transportKey}|`);
  }

  /** Graceful: GOAWAY, let open streams finish until `deadlineAt`, then destroy what is left. */
  close(deadlineAt = Date.now()): Promise<void> {
    return this.pool.close(deadlineAt);
  }
}
