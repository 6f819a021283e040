import type { Server, Socket } from 'node:net';
import type { PodListenerFds } from '../../capture/backend';
import type { CaptureSettings } from '../../capture/settings';
import type { Inbound } from '../inbound/inbound';
import type { LocalPod } from '../local-pods';
import type { ProxyMetrics } from '../metrics';
import { formatAddress, type OpenSocket } from '../open-socket';
import type { Outbound } from '../outbound/outbound';
import { handleFd } from '../../datapath/pod-network';

export interface PodProxyDeps {
  local: LocalPod;
  settings: CaptureSettings;
  outbound: Outbound;
  inbound: Inbound;
  /** Whether this pod gets a tunnel listener (15008). */
  tunnel: boolean;
  metrics: ProxyMetrics;
}

/**
 * The proxy's presence inside one pod: the outbound (15001), inbound (15006) and tunnel
 * (15008) listeners, made in the pod's namespace (so upstream connections leave with the
 * pod's own source address), and every socket they opened, so a drain can wait for them
 * and name the ones left. What a connection becomes is outbound's and inbound's business.
 */
export class PodProxy {
  private readonly outboundServers: Array<{ family: 4 | 6; server: Server }> = [];
  private readonly inboundServers: Array<{ family: 4 | 6; server: Server }> = [];
  private readonly tunnelServers: Server[] = [];
  /** Open sockets, with what each is, so a drain that runs out can say what was left. */
  private readonly active = new Map<Socket, OpenSocket['kind']>();
  private readonly track = (s: Socket, kind: OpenSocket['kind']): void => {
    this.active.set(s, kind);
    s.once('close', () => this.active.delete(s));
  };

  constructor(private readonly deps: PodProxyDeps) {}

  get key(): string {
    return this.deps.local.key;
  }

  /** Opens the listeners; returns their descriptors for the capture back-end. */
  async start(): Promise<PodListenerFds> {
    const { settings, local, outbound, inbound } = this.deps;
    const network = local.network;
    const families: Array<4 | 6> = network.ipv6 ? [4, 6] : [4];
    try {
      for (const family of families) {
        const loopback = family === 4 ? '127.0.0.1' : '::1';
        const any = family === 4 ? '0.0.0.0' : '::';
        const out = await network.listen({ family, address: loopback, port: settings.outboundPort });
        out.on('connection', (s: Socket) => void outbound.accept(s, local, this.track));
        this.outboundServers.push({ family, server: out });
        if (settings.captureInbound) {
          const inb = await network.listen({ family, address: any, port: settings.inboundPort });
          inb.on('connection', (s: Socket) => inbound.accept(s, local, this.track));
          this.inboundServers.push({ family, server: inb });
        }
        if (this.deps.tunnel) {
          const tun = await network.listen({ family, address: any, port: settings.tunnelPort });
          tun.on('connection', (s: Socket) => inbound.acceptTunnel(s, local, this.track));
          this.tunnelServers.push(tun);
        }
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.deps.metrics.listeners.inc({ kind: 'outbound' }, this.outboundServers.length);
    this.deps.metrics.listeners.inc({ kind: 'inbound' }, this.inboundServers.length);
    return {
      outbound: this.outboundServers.map(({ family, server }) => ({ family, fd: handleFd(server) })),
      inbound: this.inboundServers.map(({ family, server }) => ({ family, fd: handleFd(server) })),
    };
  }

  /** Closes the listeners. Open connections finish on their own unless `abort` is set. */
  async stop(abort = false): Promise<void> {
    const servers = [...this.outboundServers, ...this.inboundServers, ...this.tunnelServers.map((server) => ({ server }))];
    this.tunnelServers.length = 0;
    this.deps.metrics.listeners.dec({ kind: 'outbound' }, this.outboundServers.length);
    this.deps.metrics.listeners.dec({ kind: 'inbound' }, this.inboundServers.length);
    this.outboundServers.length = 0;
    this.inboundServers.length = 0;
    // Stop listening now; open connections are tracked in `active` and are not waited
    // for here (server.close's callback would wait for every one of them).
    for (const { server } of servers) server.close();
    if (abort) for (const s of this.active.keys()) s.destroy();
  }

  get activeConnections(): number {
    return this.active.size;
  }

  /** What is still open: for `/debug/open` and the log line of a drain that ran out. */
  describeActive(): OpenSocket[] {
    return [...this.active].map(([s, kind]) => ({
      pod: this.key,
      kind,
      peer: formatAddress({ address: s.remoteAddress ?? '?', port: s.remotePort ?? 0 }),
      local: formatAddress({ address: s.localAddress ?? '?', port: s.localPort ?? 0 }),
    }));
  }
}
