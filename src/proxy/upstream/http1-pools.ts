import { Pool } from 'undici';
import type { Duplex } from 'node:stream';
import type { UpstreamTransport } from './transport';

const CONNECT_TIMEOUT_MS = 5000;
const KEEP_ALIVE_MS = 30_000;

/**
 * undici pools for HTTP/1.1 upstreams, one per (transport, endpoint). Connections come
 * from the transport (a socket made inside a pod's namespace, or a tunnel stream), so
 * keep-alive reuse never crosses pods.
 */
export class Http1Pools {
  private readonly pools = new Map<string, Pool>();

  constructor(private readonly connectionsPerEndpoint = 128) {}

  get(transport: UpstreamTransport, address: string, port: number): Pool {
    const key = `${transport.key}|${address}|${port}`;
    let pool = this.pools.get(key);
    if (!pool) {
      const host = address.includes(':') ? `[${address}]` : address;
      pool = new Pool(`http://${host}:${port}`, {
        connections: this.connectionsPerEndpoint,
        pipelining: 1,
        keepAliveTimeout: KEEP_ALIVE_MS,
        keepAliveMaxTimeout: KEEP_ALIVE_MS,
        connect: (_opts, cb) => {
          transport.open({ address, port }, CONNECT_TIMEOUT_MS).then(
            (s: Duplex) => cb(null, s as unknown as import('node:net').Socket),
            (err: Error) => cb(err, null),
          );
        },
      });
      this.pools.set(key, pool);
    }
    return pool;
  }

  /** Drops the pools of one transport (a pod released: its sockets must go). */
  async dropTransport(transportKey: string): Promise<void> {
    const doomed = [...this.pools].filter(([k]) => k.startsWith(`${transportKey}|`));
    for (const [k] of doomed) this.pools.delete(k);
    await Promise.all(doomed.map(([, p]) => p.destroy().catch(() => undefined)));
  }

  /** Closes idle connections gracefully (drain), then destroys what is left. */
  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.close().catch(() => p.destroy())));
  }
}
