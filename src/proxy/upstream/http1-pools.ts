import type { Duplex } from 'node:stream';
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
  /**
   * Idle connections a previous agent handed over, by pool key, until a request here
   * makes that pool (which takes them) or the keep-alive time passes (closed).
   */
  private readonly parked = new Map<string, Array<{ stream: Duplex; since: number }>>();
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
      const parked = this.parked.get(key);
      if (parked) {
        this.parked.delete(key);
        for (const p of parked) pool.adoptIdle(p.stream);
      }
      this.startSweep();
    }
    return pool;
  }

  private startSweep(): void {
    this.sweep ??= setInterval(() => {
      const now = performance.now();
      for (const p of this.pools.values()) p.sweep(now);
      for (const [key, list] of [...this.parked]) {
        const fresh: typeof list = [];
        for (const p of list) {
          if (now - p.since <= this.keepAliveMs && !p.stream.destroyed) fresh.push(p);
          else p.stream.destroy();
        }
        if (fresh.length > 0) this.parked.set(key, fresh);
        else this.parked.delete(key);
      }
    }, Math.max(1000, this.keepAliveMs / 4)).unref();
  }

  /**
   * Agent hand-over, old side: the idle connections of the pools whose key `matches`
   * leave, detached (each stream open, nobody reading), with their pool's key.
   */
  takeIdle(matches: (key: string) => boolean): Array<{ key: string; stream: Duplex }> {
    const out: Array<{ key: string; stream: Duplex }> = [];
    for (const [key, pool] of this.pools) {
      if (matches(key)) for (const stream of pool.takeIdle()) out.push({ key, stream });
    }
    return out;
  }

  /** Agent hand-over, new side: an idle connection for the pool `key` (taken when a request here needs that pool). */
  adoptIdle(key: string, stream: Duplex): void {
    const pool = this.pools.get(key);
    if (pool && !pool.isClosed) {
      pool.adoptIdle(stream);
      return;
    }
    // Nobody reads it while parked: what the server sends (a close) waits in the kernel,
    // and the codec sees it once a pool takes the connection.
    getOrCreate(this.parked, key, () => []).push({ stream, since: performance.now() });
    this.startSweep();
  }

  /** Drops the pools of one transport (a pod released: its connections must go). */
  async dropTransport(transportKey: string): Promise<void> {
    for (const [k, p] of [...this.pools]) {
      if (!k.startsWith(`${transportKey}|`)) continue;
      this.pools.delete(k);
      p.close();
    }
    for (const [k, list] of [...this.parked]) {
      if (!k.startsWith(`${transportKey}|`)) continue;
      this.parked.delete(k);
      for (const p of list) p.stream.destroy();
    }
  }

  /** Closes idle connections; busy ones close when their response ends (drain). */
  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    if (this.sweep) clearInterval(this.sweep);
    this.sweep = undefined;
    for (const p of pools) p.close();
    for (const list of this.parked.values()) for (const p of list) p.stream.destroy();
    this.parked.clear();
  }
}
