import { isIPv6, type Server, type Socket } from 'node:net';
import type { CaptureSettings } from '../capture/settings';
import { INBOUND_PASSTHROUGH_SOURCE } from '../capture/settings';
import type { PodListenerFds } from '../capture/backend';
import { describeError } from '../errors';
import type { Logger } from '../log';
import type { ConnectionLog } from './connection-log';
import { DestinationResolver, describeResolution, type DestinationView } from './destination';
import type { ProxyMetrics } from './metrics';
import { handleFd, type PodNetwork, type SocketAddress } from './pod-network';
import { relay } from './tcp-relay';

/** The reply to a capture self-test connection; the agent checks for it. */
export const PROBE_REPLY_PREFIX = 'nodemesh-capture-ok';

export interface PodIdentity {
  namespace: string;
  name: string;
  ips: string[];
}

export interface PodProxyDeps {
  pod: PodIdentity;
  network: PodNetwork;
  settings: CaptureSettings;
  /** The current mesh snapshot; read once per connection, so a connection keeps the
   * snapshot it started with. */
  view: () => DestinationView;
  log: ConnectionLog;
  metrics: ProxyMetrics;
  logger: Logger;
  connectTimeoutMs?: number;
}

function fmt(a: SocketAddress | { address?: string; port?: number }): string {
  const addr = a.address ?? '?';
  return addr.includes(':') ? `[${addr}]:${a.port}` : `${addr}:${a.port}`;
}

/**
 * The proxy's presence inside one pod: the outbound (15001) and inbound (15006) listeners
 * and the handlers behind them. Listeners live in the pod's namespace, so upstream
 * connections leave from the pod with the pod's own source address.
 */
export class PodProxy {
  private readonly outbound: Array<{ family: 4 | 6; server: Server }> = [];
  private readonly inbound: Array<{ family: 4 | 6; server: Server }> = [];
  private readonly resolver = new DestinationResolver();
  private readonly active = new Set<Socket>();
  readonly key: string;

  constructor(private readonly deps: PodProxyDeps) {
    this.key = `${deps.pod.namespace}/${deps.pod.name}`;
  }

  /** Opens the listeners; returns their descriptors for the capture back-end. */
  async start(): Promise<PodListenerFds> {
    const { network, settings } = this.deps;
    const families: Array<4 | 6> = network.ipv6 ? [4, 6] : [4];
    try {
      for (const family of families) {
        const loopback = family === 4 ? '127.0.0.1' : '::1';
        const out = await network.listen({ family, address: loopback, port: settings.outboundPort });
        out.on('connection', (s: Socket) => this.onOutbound(s));
        this.outbound.push({ family, server: out });
        if (settings.captureInbound) {
          const any = family === 4 ? '0.0.0.0' : '::';
          const inb = await network.listen({ family, address: any, port: settings.inboundPort });
          inb.on('connection', (s: Socket) => this.onInbound(s));
          this.inbound.push({ family, server: inb });
        }
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.deps.metrics.listeners.inc({ kind: 'outbound' }, this.outbound.length);
    this.deps.metrics.listeners.inc({ kind: 'inbound' }, this.inbound.length);
    return {
      outbound: this.outbound.map(({ family, server }) => ({ family, fd: handleFd(server) })),
      inbound: this.inbound.map(({ family, server }) => ({ family, fd: handleFd(server) })),
    };
  }

  /** Closes the listeners. Open connections finish on their own unless `abort` is set. */
  async stop(abort = false): Promise<void> {
    const servers = [...this.outbound, ...this.inbound];
    this.deps.metrics.listeners.dec({ kind: 'outbound' }, this.outbound.length);
    this.deps.metrics.listeners.dec({ kind: 'inbound' }, this.inbound.length);
    this.outbound.length = 0;
    this.inbound.length = 0;
    // Stop listening now; open connections are tracked in `active` and are not waited
    // for here (server.close's callback would wait for every one of them).
    for (const { server } of servers) server.close();
    if (abort) for (const s of this.active) s.destroy();
  }

  get activeConnections(): number {
    return this.active.size;
  }

  private track(s: Socket): void {
    this.active.add(s);
    s.once('close', () => this.active.delete(s));
  }

  private onOutbound(client: Socket): void {
    this.track(client);
    client.pause();
    const { network, settings, pod } = this.deps;
    const source = { address: client.remoteAddress, port: client.remotePort };
    const original = network.originalDestination(client, settings.outboundPort);
    if (!original) {
      this.fail(client, 'outbound', fmt(source), '?', 'no original destination: capture did not record one for this connection (SO_ORIGINAL_DST unanswered)');
      return;
    }
    if (original.port === settings.probePort && pod.ips.includes(original.address)) {
      this.answerProbe(client, fmt(source), fmt(original));
      return;
    }
    const resolution = this.resolver.resolve(this.deps.view(), original.address, original.port);
    if (resolution.kind === 'no-endpoints') {
      this.fail(client, 'outbound', fmt(source), fmt(original), `${describeResolution(resolution)}: check the Service's selector and that its pods are ready`);
      return;
    }
    const family = isIPv6(resolution.address) ? 6 : 4;
    this.forward(client, 'outbound', fmt(source), original, { family, address: resolution.address, port: resolution.port }, describeResolution(resolution));
  }

  private onInbound(client: Socket): void {
    this.track(client);
    client.pause();
    const { network, settings } = this.deps;
    const source = { address: client.remoteAddress, port: client.remotePort };
    const original = network.originalDestination(client, settings.inboundPort);
    if (!original) {
      this.fail(client, 'inbound', fmt(source), '?', 'no original destination for an inbound connection');
      return;
    }
    // Deliver from 127.0.0.6, which no capture hook touches, to the app's own address.
    const bindAddress = original.family === 4 ? INBOUND_PASSTHROUGH_SOURCE : undefined;
    this.forward(client, 'inbound', fmt(source), original, { ...original, ...(bindAddress ? { bindAddress } : {}) }, 'local app');
  }

  private answerProbe(client: Socket, source: string, original: string): void {
    const { metrics, pod } = this.deps;
    client.on('error', () => client.destroy());
    client.on('end', () => client.destroy());
    // The prober closes once it has read the reply; never let a silent one linger.
    client.setTimeout(5000, () => client.destroy());
    client.end(`${PROBE_REPLY_PREFIX} ${this.key}\n`);
    metrics.connections.inc({ direction: 'probe', namespace: pod.namespace, pod: pod.name, result: 'ok' });
    this.deps.log.add({ direction: 'probe', pod: this.key, source, originalDestination: original, bytesUp: 0, bytesDown: 0, durationMs: 0, result: 'ok' });
  }

  private forward(
    client: Socket,
    direction: 'outbound' | 'inbound',
    source: string,
    original: SocketAddress,
    target: SocketAddress & { bindAddress?: string },
    resolution: string,
  ): void {
    const { network, metrics, pod, logger } = this.deps;
    const labels = { direction, namespace: pod.namespace, pod: pod.name };
    let upstream: Socket;
    try {
      upstream = network.connect({ ...target, timeoutMs: this.deps.connectTimeoutMs ?? 10_000 });
    } catch (err) {
      this.fail(client, direction, source, fmt(original), `could not open the upstream socket in the pod: ${describeError(err)}`);
      return;
    }
    this.track(upstream);
    metrics.active.inc({ direction });
    let connected = false;
    upstream.once('connect', () => { connected = true; });
    relay(client, upstream).then((result) => {
      metrics.active.dec({ direction });
      const ok = connected && !result.error;
      metrics.connections.inc({ ...labels, result: ok ? 'ok' : 'error' });
      metrics.bytes.inc({ ...labels, flow: 'sent' }, result.bytesUp);
      metrics.bytes.inc({ ...labels, flow: 'received' }, result.bytesDown);
      const record = this.deps.log.add({
        direction,
        pod: this.key,
        source,
        originalDestination: fmt(original),
        upstream: fmt(target),
        resolution,
        bytesUp: result.bytesUp,
        bytesDown: result.bytesDown,
        durationMs: Math.round(result.durationMs * 1000) / 1000,
        result: ok ? 'ok' : 'error',
        ...(result.error ? { error: `${connected ? '' : 'upstream connect failed: '}${describeError(result.error)}` } : {}),
      });
      logger.debug({ connection: record }, 'connection closed');
    });
  }

  private fail(client: Socket, direction: 'outbound' | 'inbound', source: string, original: string, reason: string): void {
    const { metrics, pod, logger } = this.deps;
    metrics.connections.inc({ direction, namespace: pod.namespace, pod: pod.name, result: 'error' });
    this.deps.log.add({ direction, pod: this.key, source, originalDestination: original, bytesUp: 0, bytesDown: 0, durationMs: 0, result: 'error', error: reason });
    logger.warn({ pod: this.key, direction, source, originalDestination: original }, reason);
    client.on('error', () => undefined);
    client.resetAndDestroy();
  }
}
