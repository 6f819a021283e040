import { H1ClientPool } from '../h1/client-pool';
import type { UpstreamTransport } from './transport';
import { getOrCreate, newMap } from '../../util/get-or-create';

const CONNECT_TIMEOUT_MS = 5000;
const KEEP_ALIVE_MS = 30_000;

/**
 * HTTP/1.1 upstream pools, one per (transport, endpoint). Connections come from the
 * transport (a socket made inside a pod's namespace, or a tunnel stream), so keep-alive
 * reuse never crosses pods. One timer sweeps idle connections of every pool.
 */
export class Http1Pools {
  private readonly pools = new Map<string, H1ClientPool>();
  private readonly byTransport = new WeakMap<UpstreamTransport, Map<string, Map<number, H1ClientPool>>>();
  private sweep: NodeJS.Timeout | undefined;

  constructor(private readonly connectionsPerEndpoint = 128, private readonly keepAliveMs = KEEP_ALIVE_MS) {}

  get(transport: UpstreamTransport, address: string, port: number): H1ClientPool {
    // Fast path per transport object, without building the registry's key string.
    const byAddress = getOrCreate(this.byTransport, transport, newMap<string, Map<number, H1ClientPool>>);
    const byPort = getOrCreate(byAddress, address, newMap<number, H1ClientPool>);
    let pool = byPort.get(port);
    if (pool && !pool.isClosed) return pool;
    pool = this.lookup(transport, address, port);
    byPort.set(port, pool);
    return pool;
  }

  private lookup(transport: UpstreamTransport, address: string, port: number): H1ClientPool {
    const key = `${transport.key}|${address}|${port}`;
    let pool = this.pools.get(key);
    if (!pool) {
      pool = new H1ClientPool(() => transport.open({ address, port }, CONNECT_TIMEOUT_MS), {
        maxConnections: this.connectionsPerEndpoint,
        keepAliveMs: this.keepAliveMs,
      });
      this.pools.set(key, pool);
      this.sweep ??= setInterval(() => {
        const now = performance.now();
        for (const p of this.pools.values()) p.sweep(now);
      }, Math.max(1000, this.keepAliveMs / 4)).unref();
    }
    return pool;
  }

  /** Drops the pools of one transport (a pod released: its connections must go). */
  async dropTransport(transportKey: string): Promise<void> {
    for (const [k, p] of [...this.pools]) {
      if (!k.startsWith(`${transportKey}|`)) continue;
      this.pools.delete(k);
      p.close();
    }
  }

  /** Closes idle connections; busy ones close when their response ends (drain). */
  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    if (this.sweep) clearInterval(this.sweep);
    this.sweep = undefined;
    for (const p of pools) p.close();
  }
}
