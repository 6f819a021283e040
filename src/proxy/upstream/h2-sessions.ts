import { connect, type ClientHttp2Session } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { UpstreamTransport } from './transport';
import { closePooledSessionsBy } from '../http2-close';
import { formatHostPort } from '../../util/host-port';

const CONNECT_TIMEOUT_MS = 5000;

/**
 * HTTP/2 (h2c, gRPC) upstream sessions, one per (transport, endpoint), multiplexing every
 * stream to that endpoint over one connection. A session that closes or errors is
 * forgotten and the next request opens a new one.
 */
export class H2Sessions {
  private readonly sessions = new Map<string, Promise<ClientHttp2Session>>();

  get(transport: UpstreamTransport, address: string, port: number): Promise<ClientHttp2Session> {
    const key = `${transport.key}|${address}|${port}`;
    let pending = this.sessions.get(key);
    if (!pending) {
      pending = transport.open({ address, port }, CONNECT_TIMEOUT_MS).then((stream: Duplex) => {
        const session = connect(`http://${formatHostPort(address, port)}`, { createConnection: () => stream });
        const forget = () => { if (this.sessions.get(key) === pending) this.sessions.delete(key); };
        session.once('close', forget);
        session.once('error', forget);
        session.once('goaway', forget);
        session.on('error', () => undefined);
        return session;
      });
      pending.catch(() => { if (this.sessions.get(key) === pending) this.sessions.delete(key); });
      this.sessions.set(key, pending);
    }
    return pending;
  }

  async dropTransport(transportKey: string): Promise<void> {
    for (const [k, p] of [...this.sessions]) {
      if (!k.startsWith(`${transportKey}|`)) continue;
      this.sessions.delete(k);
      p.then((s) => s.destroy(), () => undefined);
    }
  }

  /** Graceful: GOAWAY, let open streams finish until `deadlineAt`, then destroy what is left. */
  async close(deadlineAt = Date.now()): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    await closePooledSessionsBy(all, deadlineAt);
  }
}
