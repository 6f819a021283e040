import type { Server, Socket } from 'node:net';
import type { PodListenerFds } from '../../capture/backend';
import type { CaptureSettings } from '../../capture/settings';
import type { Inbound } from '../inbound/inbound';
import type { LocalPod } from '../local-pods';
import type { ProxyMetrics } from '../metrics';
import { formatAddress, type OpenSocket } from '../open-socket';
import type { Outbound } from '../outbound/outbound';
import { handleFd } from '../../datapath/pod-network';
import { serverFromFd } from '../../datapath/fd-channel';
import { PausedListener, type InheritedListeners, type ListenerMeta, type OfferedListener } from '../handover/listeners';

/** The backlog of listeners adopted from a descriptor (as the pod sandbox makes them). */
const LISTEN_BACKLOG = 4096;
type Kind = 'outbound' | 'inbound' | 'tunnel';

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
  private readonly tunnelServers: Array<{ family: 4 | 6; server: Server }> = [];
  /** Listeners given to the next agent, kept alive until it confirms (hand-over). */
  private paused: Array<{ kind: Kind; family: 4 | 6; listener: PausedListener }> = [];
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

  /**
   * Opens the listeners, or adopts those a previous agent handed over (`inherited`: the
   * same kernel sockets, so capture's entries for them stay as they are); returns their
   * descriptors for the capture back-end.
   */
  async start(inherited?: InheritedListeners): Promise<PodListenerFds> {
    const { settings, local } = this.deps;
    const network = local.network;
    const families: Array<4 | 6> = network.ipv6 ? [4, 6] : [4];
    const open = async (kind: Kind, family: 4 | 6, address: string, port: number): Promise<void> => {
      const fd = inherited?.take(this.meta(kind, family, port));
      const server = fd !== undefined ? await serverFromFd(fd, LISTEN_BACKLOG) : await network.listen({ family, address, port });
      this.serve(kind, family, server);
    };
    try {
      for (const family of families) {
        const loopback = family === 4 ? '127.0.0.1' : '::1';
        const any = family === 4 ? '0.0.0.0' : '::';
        await open('outbound', family, loopback, settings.outboundPort);
        if (settings.captureInbound) await open('inbound', family, any, settings.inboundPort);
        if (this.deps.tunnel) await open('tunnel', family, any, settings.tunnelPort);
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

  private meta(kind: Kind, family: 4 | 6, port: number): ListenerMeta {
    return { kind, podKey: this.key, podUid: this.deps.local.pod.uid, family, port };
  }

  private portOf(kind: Kind): number {
    const { settings } = this.deps;
    return kind === 'outbound' ? settings.outboundPort : kind === 'inbound' ? settings.inboundPort : settings.tunnelPort;
  }

  private serve(kind: Kind, family: 4 | 6, server: Server): void {
    const { local, outbound, inbound } = this.deps;
    if (kind === 'outbound') {
      server.on('connection', (s: Socket) => void outbound.accept(s, local, this.track));
      this.outboundServers.push({ family, server });
    } else if (kind === 'inbound') {
      server.on('connection', (s: Socket) => inbound.accept(s, local, this.track));
      this.inboundServers.push({ family, server });
    } else {
      server.on('connection', (s: Socket) => inbound.acceptTunnel(s, local, this.track));
      this.tunnelServers.push({ family, server });
    }
  }

  /** The listeners as the next agent needs them: what each is, and its descriptor. */
  offerListeners(): OfferedListener[] {
    const all: Array<{ kind: Kind; family: 4 | 6; server: Server }> = [
      ...this.outboundServers.map((e) => ({ kind: 'outbound' as const, ...e })),
      ...this.inboundServers.map((e) => ({ kind: 'inbound' as const, ...e })),
      ...this.tunnelServers.map((e) => ({ kind: 'tunnel' as const, ...e })),
    ];
    return all.map(({ kind, family, server }) => ({ meta: this.meta(kind, family, this.portOf(kind)), fd: handleFd(server) }));
  }

  /** The next agent accepts on our listeners now: stop accepting, but keep them for `resumeListeners`. */
  pauseListeners(): void {
    const take = (kind: Kind, list: Array<{ family: 4 | 6; server: Server }>) => {
      for (const { family, server } of list) this.paused.push({ kind, family, listener: PausedListener.pause(server, LISTEN_BACKLOG) });
      list.length = 0;
    };
    take('outbound', this.outboundServers);
    take('inbound', this.inboundServers);
    take('tunnel', this.tunnelServers);
  }

  /** The hand-over failed: accept on the same kernel sockets again. */
  async resumeListeners(): Promise<void> {
    const paused = this.paused;
    this.paused = [];
    for (const { kind, family, listener } of paused) this.serve(kind, family, await listener.resume());
  }

  /** The next agent confirmed: the paused listeners are its alone. */
  releaseListeners(): void {
    for (const { listener } of this.paused) listener.release();
    this.paused = [];
  }

  /** Tracks a socket adopted from a previous agent, like one accepted here. */
  adoptTrack(): (s: Socket, kind: OpenSocket['kind']) => void {
    return this.track;
  }

  /** Closes the listeners. Open connections finish on their own unless `abort` is set. */
  async stop(abort = false): Promise<void> {
    const servers = [...this.outboundServers, ...this.inboundServers, ...this.tunnelServers];
    this.releaseListeners();
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
