import type { Server, Socket } from 'node:net';
import type { CaptureSettings } from '../capture/settings';
import type { PodListenerFds } from '../capture/backend';
import { describeError } from '../errors';
import type { Logger } from '../log';
import { podKey, type PodInfo, type ServiceInfo } from '../mesh/model';
import type { WorkloadInfo } from '../telemetry/istio-metrics';
import type { ConnectionLog } from './connection-log';
import type { ConnectionInfo } from './http/pipeline';
import type { ProxyMetrics } from './metrics';
import type { NodeProxy } from './node-proxy';
import { handleFd, type PodNetwork, type SocketAddress } from './pod-network';
import { protocolFromAppProtocol, sniff } from './protocol/sniff';
import { relay } from './tcp-relay';

/** The reply to a capture self-test connection; the agent checks for it. */
export const PROBE_REPLY_PREFIX = 'nodemesh-capture-ok';

export interface PodProxyDeps {
  pod: PodInfo;
  network: PodNetwork;
  settings: CaptureSettings;
  node: NodeProxy;
  log: ConnectionLog;
  metrics: ProxyMetrics;
  logger: Logger;
  sniffTimeoutMs: number;
  connectTimeoutMs?: number;
}

function fmt(a: SocketAddress | { address?: string; port?: number }): string {
  const addr = a.address ?? '?';
  return addr.includes(':') ? `[${addr}]:${a.port}` : `${addr}:${a.port}`;
}

/**
 * The address an outbound connection came from, as the pod's: eBPF capture rewrites the
 * app's connect() to the proxy's loopback listener, so the kernel gives the socket a
 * loopback source; the pod's own address of that family is what logs should name.
 */
export function podSourceAddress(remote: string | undefined, podIPs: readonly string[]): string | undefined {
  if (remote === undefined) return undefined;
  const v4 = remote.startsWith('127.') || remote.startsWith('::ffff:127.');
  if (!v4 && remote !== '::1') return remote;
  return podIPs.find((ip) => (v4 ? !ip.includes(':') : ip.includes(':'))) ?? remote;
}

interface TcpTarget {
  address: string;
  port: number;
  resolution: string;
  service?: ServiceInfo;
  destination?: WorkloadInfo;
}

/**
 * The proxy's presence inside one pod: the outbound (15001) and inbound (15006) listeners.
 * Outbound connections are sniffed and handed to the HTTP pipeline or relayed as TCP;
 * inbound ones are delivered to the pod's app. Listeners live in the pod's namespace, so
 * upstream connections leave with the pod's own source address.
 */
/** A socket a pod's proxy holds open (`/debug/open`, and what a drain waits for). */
export interface OpenSocket {
  pod: string;
  kind: 'outbound' | 'inbound' | 'tunnel' | 'upstream';
  peer: string;
  local: string;
}

export class PodProxy {
  private readonly outbound: Array<{ family: 4 | 6; server: Server }> = [];
  private readonly inbound: Array<{ family: 4 | 6; server: Server }> = [];
  private readonly tunnel: Server[] = [];
  /** Open sockets, with what each is, so a drain that runs out can say what was left. */
  private readonly active = new Map<Socket, OpenSocket['kind']>();
  readonly key: string;

  constructor(private readonly deps: PodProxyDeps) {
    this.key = podKey(deps.pod);
  }

  /** Opens the listeners; returns their descriptors for the capture back-end. */
  async start(): Promise<PodListenerFds> {
    const { network, settings } = this.deps;
    const families: Array<4 | 6> = network.ipv6 ? [4, 6] : [4];
    try {
      for (const family of families) {
        const loopback = family === 4 ? '127.0.0.1' : '::1';
        const out = await network.listen({ family, address: loopback, port: settings.outboundPort });
        out.on('connection', (s: Socket) => void this.onOutbound(s));
        this.outbound.push({ family, server: out });
        if (settings.captureInbound) {
          const any = family === 4 ? '0.0.0.0' : '::';
          const inb = await network.listen({ family, address: any, port: settings.inboundPort });
          inb.on('connection', (s: Socket) => this.onInbound(s));
          this.inbound.push({ family, server: inb });
        }
        if (this.deps.node.tunnelEnabled) {
          const any = family === 4 ? '0.0.0.0' : '::';
          const tun = await network.listen({ family, address: any, port: settings.tunnelPort });
          tun.on('connection', (s: Socket) => {
            s.setNoDelay(true);
            this.track(s, 'tunnel');
            this.deps.node.acceptTunnel(s);
          });
          this.tunnel.push(tun);
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
    const servers = [...this.outbound, ...this.inbound, ...this.tunnel.map((server) => ({ server }))];
    this.tunnel.length = 0;
    this.deps.metrics.listeners.dec({ kind: 'outbound' }, this.outbound.length);
    this.deps.metrics.listeners.dec({ kind: 'inbound' }, this.inbound.length);
    this.outbound.length = 0;
    this.inbound.length = 0;
    // Stop listening now; open connections are tracked in `active` and are not waited
    // for here (server.close's callback would wait for every one of them).
    for (const { server } of servers) server.close();
    if (abort) for (const s of this.active.keys()) s.destroy();
  }

  get activeConnections(): number {
    return this.active.size;
  }

  /** What is still open: for the log line of a drain that ran out. */
  describeActive(): OpenSocket[] {
    return [...this.active].map(([s, kind]) => ({
      pod: this.key,
      kind,
      peer: fmt({ address: s.remoteAddress ?? '?', port: s.remotePort ?? 0 }),
      local: fmt({ address: s.localAddress ?? '?', port: s.localPort ?? 0 }),
    }));
  }

  private track(s: Socket, kind: OpenSocket['kind']): void {
    this.active.set(s, kind);
    s.once('close', () => this.active.delete(s));
  }

  private async onOutbound(client: Socket): Promise<void> {
    // Like every upstream socket: a proxy must not add Nagle's delay to small writes
    // (a streamed response's chunks waited for the client's delayed ACK, ~40 ms each).
    client.setNoDelay(true);
    this.track(client, 'outbound');
    client.pause();
    client.on('error', () => undefined);
    const { network, settings, pod, node } = this.deps;
    const source = fmt({ address: podSourceAddress(client.remoteAddress, pod.ips), port: client.remotePort });
    const original = network.originalDestination(client, settings.outboundPort);
    if (!original) {
      this.fail(client, 'outbound', source, '?', 'no original destination: capture did not record one for this connection (SO_ORIGINAL_DST unanswered)');
      return;
    }
    if (original.port === settings.probePort && pod.ips.includes(original.address)) {
      this.answerProbe(client, source, fmt(original));
      return;
    }
    const config = node.config.current;
    const svc = config.snapshot.serviceByClusterIP(original.address, original.port);
    const dstPod = config.snapshot.podByIP(original.address);
    const conn: ConnectionInfo = { direction: 'outbound', pod, podKey: this.key, original, sourceAddress: source, protocol: 'http1' };
    if (svc?.port || dstPod) {
      const forced = svc?.port ? protocolFromAppProtocol(svc.port.appProtocol, svc.port.name) : undefined;
      const protocol = forced ?? (await sniff(client, this.deps.sniffTimeoutMs)).protocol;
      if (client.destroyed) return;
      if (protocol === 'http1') {
        node.http.serveHttp1(client, conn);
        this.logHttp(client, source, original);
        return;
      }
      if (protocol === 'h2') {
        node.http.serveH2(client, conn);
        this.logHttp(client, source, original);
        return;
      }
    }
    const target = this.tcpTarget(original, svc?.port ? svc.service : undefined);
    if (!target) {
      this.fail(client, 'outbound', source, fmt(original), `service ${svc!.service.namespace}/${svc!.service.name} has no ready endpoints: check its selector and that its pods are ready`);
      return;
    }
    this.forwardTcp(client, conn, source, original, target);
  }

  /** The endpoint of a TCP (or TLS pass-through) connection. */
  private tcpTarget(original: SocketAddress, service: ServiceInfo | undefined): TcpTarget | undefined {
    const config = this.deps.node.config.current;
    if (service) {
      const port = service.ports.find((p) => p.port === original.port)!;
      const ep = this.deps.node.pickEndpoint(config, service, port, original.family);
      if (!ep) return undefined;
      const pod = ep.podKey ? config.snapshot.pods.get(ep.podKey) : config.snapshot.podByIP(ep.address);
      return { address: ep.address, port: ep.port, resolution: `service ${service.namespace}/${service.name}:${port.port}`, service, ...(pod ? { destination: config.workload(pod) } : {}) };
    }
    const pod = config.snapshot.podByIP(original.address);
    return {
      address: original.address,
      port: original.port,
      resolution: pod ? `pod ${pod.namespace}/${pod.name}` : 'passthrough',
      ...(pod ? { destination: config.workload(pod) } : {}),
    };
  }

  private onInbound(client: Socket): void {
    client.setNoDelay(true);
    this.track(client, 'inbound');
    client.pause();
    client.on('error', () => undefined);
    const { network, settings, pod, node } = this.deps;
    const source = fmt({ address: client.remoteAddress, port: client.remotePort });
    const original = network.originalDestination(client, settings.inboundPort);
    if (!original) {
      this.fail(client, 'inbound', source, '?', 'no original destination for an inbound connection');
      return;
    }
    const config = node.config.current;
    const peer = config.snapshot.podByIP(client.remoteAddress?.replace(/^::ffff:/, '') ?? '');
    const conn: ConnectionInfo = { direction: 'inbound', pod, podKey: this.key, original, sourceAddress: source, protocol: 'http1' };
    this.forwardTcp(client, conn, source, original, {
      address: original.address,
      port: original.port,
      resolution: 'local app',
      destination: config.workload(pod),
      ...(peer ? { source: config.workload(peer) } : {}),
    } as TcpTarget);
  }

  private answerProbe(client: Socket, source: string, original: string): void {
    const { metrics, pod } = this.deps;
    client.on('end', () => client.destroy());
    // The prober closes once it has read the reply; never let a silent one linger.
    client.setTimeout(5000, () => client.destroy());
    client.end(`${PROBE_REPLY_PREFIX} ${this.key}\n`);
    metrics.connections.inc({ direction: 'probe', namespace: pod.namespace, pod: pod.name, result: 'ok' });
    this.deps.log.add({ direction: 'probe', pod: this.key, source, originalDestination: original, bytesUp: 0, bytesDown: 0, durationMs: 0, result: 'ok' });
  }

  /** One connection-log record per HTTP connection, when it closes. */
  private logHttp(client: Socket, source: string, original: SocketAddress): void {
    const started = Date.now();
    client.once('close', () => {
      this.deps.log.add({
        direction: 'outbound',
        pod: this.key,
        source,
        originalDestination: fmt(original),
        resolution: 'http (per-request routing)',
        bytesUp: client.bytesRead,
        bytesDown: client.bytesWritten,
        durationMs: Date.now() - started,
        result: 'ok',
      });
    });
  }

  private forwardTcp(client: Socket, conn: ConnectionInfo, source: string, original: SocketAddress, target: TcpTarget & { source?: WorkloadInfo }): void {
    const { metrics, pod, logger, node } = this.deps;
    const direction = conn.direction;
    const labels = { direction, namespace: pod.namespace, pod: pod.name };
    const config = node.config.current;
    const sourceWorkload = direction === 'outbound' ? config.workload(pod) : target.source;
    const tcpLabels = {
      reporter: direction === 'outbound' ? ('source' as const) : ('destination' as const),
      ...(sourceWorkload ? { source: sourceWorkload } : {}),
      ...(target.destination ? { destination: target.destination } : {}),
      ...(target.service ? { destinationService: { name: target.service.name, namespace: target.service.namespace, host: `${target.service.name}.${target.service.namespace}.svc.cluster.local` } } : {}),
      mtls: false,
    };
    metrics.active.inc({ direction });
    node.istio.tcpOpened(tcpLabels);
    const started = Date.now();
    const finish = (up: number, down: number, error: string | undefined, flags: string) => {
      metrics.active.dec({ direction });
      metrics.connections.inc({ ...labels, result: error ? 'error' : 'ok' });
      metrics.bytes.inc({ ...labels, flow: 'sent' }, up);
      metrics.bytes.inc({ ...labels, flow: 'received' }, down);
      node.istio.tcpClosed({ ...tcpLabels, responseFlags: flags, sentBytes: up, receivedBytes: down });
      node.accessLog?.tcp({
        startTime: started,
        durationMs: Date.now() - started,
        reporter: tcpLabels.reporter,
        ...(sourceWorkload ? { source: sourceWorkload } : {}),
        sourceAddress: source,
        ...(target.destination ? { destination: target.destination } : {}),
        ...(tcpLabels.destinationService ? { destinationService: tcpLabels.destinationService.host } : {}),
        upstreamHost: fmt(target),
        responseFlags: flags,
        bytesReceived: up,
        bytesSent: down,
      });
      const record = this.deps.log.add({
        direction,
        pod: this.key,
        source,
        originalDestination: fmt(original),
        upstream: fmt(target),
        resolution: target.resolution,
        bytesUp: up,
        bytesDown: down,
        durationMs: Date.now() - started,
        result: error ? 'error' : 'ok',
        ...(error ? { error } : {}),
      });
      logger.debug({ connection: record }, 'connection closed');
    };
    const transport = node.transportFor(conn, target);
    transport.open(target, this.deps.connectTimeoutMs ?? 10_000).then(
      (upstream) => {
        this.track(upstream as Socket, 'upstream');
        relay(client, upstream as Socket).then((r) => finish(r.bytesUp, r.bytesDown, r.error ? describeError(r.error) : undefined, r.error ? 'UC' : '-'));
      },
      (err: unknown) => {
        client.resetAndDestroy();
        finish(0, 0, `upstream connect failed: ${describeError(err)}`, 'UF');
      },
    );
  }

  private fail(client: Socket, direction: 'outbound' | 'inbound', source: string, original: string, reason: string): void {
    const { metrics, pod, logger } = this.deps;
    metrics.connections.inc({ direction, namespace: pod.namespace, pod: pod.name, result: 'error' });
    this.deps.log.add({ direction, pod: this.key, source, originalDestination: original, bytesUp: 0, bytesDown: 0, durationMs: 0, result: 'error', error: reason });
    logger.warn({ pod: this.key, direction, source, originalDestination: original }, reason);
    client.resetAndDestroy();
  }
}
