import { isIPv6, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Registry } from 'prom-client';
import type { CaptureSettings } from '../capture/settings';
import { INBOUND_PASSTHROUGH_SOURCE } from '../capture/settings';
import type { PodListenerFds } from '../capture/backend';
import { MeshSnapshot } from '../config/snapshot';
import type { RejectedObject } from '../config/objects';
import { describeError } from '../errors';
import { logger } from '../log';
import { cachedServiceKey, type Endpoint, type PodInfo, type ServiceInfo, type ServicePort } from '../mesh/model';
import { endpointKey } from '../policy/load-balancer';
import { AccessLog, type AccessLogDestination } from '../telemetry/access-log';
import { IstioMetrics, type WorkloadInfo } from '../telemetry/istio-metrics';
import { ConnectionLog } from './connection-log';
import { HttpFrontend } from './http/frontend';
import { HttpPipeline, type ConnectionInfo } from './http/pipeline';
import { ProxyMetrics } from './metrics';
import type { PodNetwork } from './pod-network';
import { PodProxy, type OpenSocket } from './pod-proxy';
import { ProxyConfigStore } from './proxy-config';
import { H2Sessions } from './upstream/h2-sessions';
import { Http1Pools } from './upstream/http1-pools';
import type { UpstreamTransport } from './upstream/transport';
import { relay } from './tcp-relay';
import { TunnelClient } from './tunnel/tunnel-client';
import { TunnelServer } from './tunnel/tunnel-server';
import { hasCode } from '../errors';
import type { ProxyConfig } from './proxy-config';
import { getOrCreate, newMap, newWeakMap } from '../util/get-or-create';
import { pollUntil, withDeadline } from '../util/deadline';

export interface NodeProxyOptions {
  /** The node this proxy serves; pods elsewhere are reached through their node's tunnel. */
  nodeName?: string;
  /** Use the HTTP/2 CONNECT tunnel (15008) towards enrolled pods on other nodes (default on). */
  tunnel?: boolean;
  /** Where access logs go; undefined: no access log. */
  accessLog?: AccessLogDestination;
  /** How long to wait for a client's first bytes before treating it as server-first TCP. */
  sniffTimeoutMs?: number;
}

interface PodEntry {
  proxy: PodProxy;
  pod: PodInfo;
  network: PodNetwork;
}

/**
 * The one proxy of a node: a PodProxy (listeners) per enrolled pod, and everything they
 * share: the configuration, upstream pools, the HTTP pipeline, telemetry. Adding or
 * removing a pod touches only that pod.
 */
export class NodeProxy {
  readonly log = new ConnectionLog();
  readonly metrics: ProxyMetrics;
  readonly istio: IstioMetrics;
  readonly config = new ProxyConfigStore(MeshSnapshot.empty());
  readonly accessLog: AccessLog | undefined;
  private readonly pods = new Map<string, PodEntry>();
  private readonly podsByIP = new Map<string, PodEntry>();
  private readonly pools = new Http1Pools();
  private readonly sessions = new H2Sessions();
  private readonly pipeline: HttpPipeline;
  private readonly frontend: HttpFrontend;
  private readonly tunnelClient = new TunnelClient();
  private readonly tunnelServer: TunnelServer;
  private readonly tunnelAddresses = new WeakMap<ProxyConfig, Map<string, string[]>>();
  private transports = new WeakMap<ProxyConfig, WeakMap<ConnectionInfo, Map<string, UpstreamTransport>>>();
  private readonly logger = logger('proxy');

  constructor(
    registry: Registry,
    private readonly settings: CaptureSettings,
    private readonly options: NodeProxyOptions = {},
  ) {
    this.metrics = new ProxyMetrics(registry);
    this.istio = new IstioMetrics(registry);
    this.accessLog = options.accessLog ? new AccessLog({ destination: options.accessLog }) : undefined;
    this.pipeline = new HttpPipeline({
      config: this.config,
      pools: this.pools,
      sessions: this.sessions,
      metrics: this.istio,
      accessLog: this.accessLog,
      logger: this.logger,
      transportFor: (conn, endpoint) => this.transportFor(conn, endpoint),
    });
    this.frontend = new HttpFrontend(this.pipeline, (conn, rawHead, _head, socket, rest) => this.passThrough(conn, rawHead, socket, rest), this.logger);
    this.tunnelServer = new TunnelServer({
      deliver: (target, meta) => {
        const local = this.podsByIP.get(target.address);
        if (!local) return Promise.reject(Object.assign(new Error(`${target.address} is not an enrolled pod of this node`), { status: 404 }));
        return this.connectIn(local.network, target, 5000, true).then((s) => {
          this.istio.tcpOpened(this.tunnelLabels(target.address, meta));
          return s;
        });
      },
      onStream: (info) => {
        // The destination's half of the story (Istio's reporter="destination"): the
        // source node's proxy reported the requests; this side reports the connection.
        const labels = this.tunnelLabels(info.target.address, info);
        const flags = info.error ? 'UC' : '-';
        this.istio.tcpClosed({ ...labels, responseFlags: flags, sentBytes: info.bytesIn, receivedBytes: info.bytesOut });
        this.accessLog?.tcp({
          startTime: info.startedAt,
          durationMs: info.durationMs,
          reporter: 'destination',
          ...(labels.source ? { source: labels.source } : {}),
          sourceAddress: info.peer,
          ...(labels.destination ? { destination: labels.destination } : {}),
          upstreamHost: `${info.target.address}:${info.target.port}`,
          responseFlags: flags,
          bytesReceived: info.bytesIn,
          bytesSent: info.bytesOut,
        });
        this.logger.debug({ tunnel: info }, 'tunnel stream closed');
      },
    }, this.logger.child({ component: 'tunnel' }));
  }

  /**
   * Who is at either end of a tunnel stream: the source pod by the tunnel connection's peer
   * address (the source node's proxy connects from inside the source pod), else the
   * workload the stream names; the destination is the pod of this node it was delivered to.
   */
  private tunnelLabels(target: string, meta: { sourceWorkload?: string; peer: string }) {
    const config = this.config.current;
    const peerPod = config.snapshot.podByIP(meta.peer.replace(/^::ffff:/, ''));
    let source: WorkloadInfo | undefined = peerPod ? config.workload(peerPod) : undefined;
    if (!source && meta.sourceWorkload) {
      const [namespace, name] = meta.sourceWorkload.split('/');
      if (namespace && name) source = { namespace, name };
    }
    const dstPod = this.podsByIP.get(target)?.pod;
    const destination = dstPod ? config.workload(dstPod) : undefined;
    return { reporter: 'destination' as const, ...(source ? { source } : {}), ...(destination ? { destination } : {}), mtls: false };
  }

  get tunnelEnabled(): boolean {
    return this.options.tunnel !== false && this.options.nodeName !== undefined;
  }

  /** A connection accepted on a pod's 15008 listener. */
  acceptTunnel(socket: Socket): void {
    this.tunnelServer.accept(socket);
  }

  /** The addresses of a node's enrolled pods, where its proxy listens on 15008 (sorted, so every source picks the same one). */
  private tunnelAddressesOf(config: ProxyConfig, nodeName: string): string[] {
    let byNode = this.tunnelAddresses.get(config);
    if (!byNode) {
      byNode = new Map();
      for (const pod of config.snapshot.pods.values()) {
        if (pod.hostNetwork || config.snapshot.effectiveMode(pod) !== 'ambient') continue;
        const list = byNode.get(pod.nodeName) ?? [];
        list.push(...pod.ips);
        byNode.set(pod.nodeName, list);
      }
      for (const list of byNode.values()) list.sort();
      this.tunnelAddresses.set(config, byNode);
    }
    return byNode.get(nodeName) ?? [];
  }

  /** A new configuration snapshot; requests in flight keep the one they started with. */
  updateSnapshot(snapshot: MeshSnapshot): void {
    this.config.update(snapshot);
  }

  /**
   * What /debug/config shows: the configuration in force, and every object rejected on
   * the way (by the source, given here, and by route and policy compilation).
   */
  describeConfig(sourceRejected: readonly RejectedObject[]) {
    const c = this.config.current;
    return {
      version: c.snapshot.version,
      pods: c.snapshot.pods.size,
      services: c.snapshot.services.size,
      routes: c.routes.describe(),
      policies: this.config.policies.status(),
      rejected: [...sourceRejected, ...c.rejected],
      warnings: c.warnings,
    };
  }

  /** Starts the pod's listeners (replacing any it had) and returns their descriptors. */
  async addPod(pod: PodInfo, network: PodNetwork): Promise<PodListenerFds> {
    const key = `${pod.namespace}/${pod.name}`;
    await this.removePod(key);
    const proxy = new PodProxy({
      pod,
      network,
      settings: this.settings,
      node: this,
      log: this.log,
      metrics: this.metrics,
      logger: this.logger.child({ pod: key }),
      sniffTimeoutMs: this.options.sniffTimeoutMs ?? 200,
    });
    const fds = await proxy.start();
    const entry = { proxy, pod, network };
    this.pods.set(key, entry);
    this.transports = new WeakMap();
    for (const ip of pod.ips) this.podsByIP.set(ip, entry);
    return fds;
  }

  async removePod(key: string, abort = false): Promise<void> {
    const entry = this.pods.get(key);
    if (!entry) return;
    this.pods.delete(key);
    this.transports = new WeakMap();
    for (const ip of entry.pod.ips) if (this.podsByIP.get(ip) === entry) this.podsByIP.delete(ip);
    await entry.proxy.stop(abort);
    // Pooled connections made from (or into) this pod's namespace must not outlive it.
    this.tunnelClient.dropPrefix(`tunnel:${key}:`);
    await Promise.all([this.pools.dropTransport(`direct:${key}`), this.pools.dropTransport(`local:${key}`), this.sessions.dropTransport(`direct:${key}`), this.sessions.dropTransport(`local:${key}`)]);
  }

  has(key: string): boolean {
    return this.pods.has(key);
  }

  /** The HTTP servers captured connections are handed to once sniffed. */
  get http(): HttpFrontend {
    return this.frontend;
  }

  /**
   * How a connection of `conn`'s pod reaches an endpoint:
   * an enrolled pod of this node is reached by in-process hand-over (a socket made in
   * that pod's namespace, from 127.0.0.6, as the inbound path does), anything else
   * directly from the source pod's namespace.
   */
  transportFor(conn: ConnectionInfo, endpoint: { address: string; port: number }): UpstreamTransport {
    // Asked for every request: the answer only changes with the configuration or the pods
    // enrolled here, so it is kept per configuration and forgotten when pods come and go.
    // Keyed by objects and strings that already exist (no key string to build and hash).
    const config = this.config.current;
    const byConn = getOrCreate(this.transports, config, newWeakMap<ConnectionInfo, Map<string, UpstreamTransport>>);
    const byAddress = getOrCreate(byConn, conn, newMap<string, UpstreamTransport>);
    let transport = byAddress.get(endpoint.address);
    if (!transport) {
      transport = this.makeTransport(conn, endpoint);
      byAddress.set(endpoint.address, transport);
    }
    return transport;
  }

  private makeTransport(conn: ConnectionInfo, endpoint: { address: string; port: number }): UpstreamTransport {
    const local = this.podsByIP.get(endpoint.address);
    if (local) {
      const key = `${local.pod.namespace}/${local.pod.name}`;
      return {
        kind: 'local',
        key: `local:${key}`,
        open: (target, timeoutMs) => this.connectIn(local.network, target, timeoutMs, true),
      };
    }
    const source = this.pods.get(conn.podKey);
    const config = this.config.current;
    const dstPod = config.snapshot.podByIP(endpoint.address);
    if (source && dstPod && this.tunnelEnabled && dstPod.nodeName !== this.options.nodeName && !dstPod.hostNetwork && config.snapshot.effectiveMode(dstPod) === 'ambient') {
      const family = isIPv6(endpoint.address) ? 6 : 4;
      const tunnelIP = this.tunnelAddressesOf(config, dstPod.nodeName).find((ip) => (isIPv6(ip) ? 6 : 4) === family);
      if (tunnelIP) {
        const tunnel = { address: tunnelIP, port: this.settings.tunnelPort };
        const poolKey = `tunnel:${conn.podKey}:${dstPod.nodeName}:${tunnelIP}`;
        const sourceWorkload = `${source.pod.namespace}/${config.workload(source.pod).name}`;
        return {
          kind: 'tunnel',
          key: poolKey,
          open: (target, timeoutMs) =>
            this.tunnelClient
              .open(poolKey, tunnel, () => this.connectIn(source.network, tunnel, timeoutMs, false), target, { sourceWorkload, originalDestination: `${conn.original.address}:${conn.original.port}` }, timeoutMs)
              .catch((err: unknown) => {
                // No proxy answering on that node (not installed, restarting): go direct
                // rather than fail the pod's traffic.
                if (hasCode(err, 'ECONNREFUSED') || hasCode(err, 'ERR_NM_TUNNEL_REFUSED')) {
                  this.logger.debug({ node: dstPod.nodeName, err: describeError(err) }, 'tunnel unavailable, connecting directly');
                  return this.connectIn(source.network, target, timeoutMs, false);
                }
                throw err;
              }),
        };
      }
    }
    if (!source) {
      return { kind: 'direct', key: `direct:${conn.podKey}`, open: () => Promise.reject(Object.assign(new Error(`pod ${conn.podKey} is no longer enrolled`), { code: 'ECONNREFUSED' })) };
    }
    return {
      kind: 'direct',
      key: `direct:${conn.podKey}`,
      open: (target, timeoutMs) => this.connectIn(source.network, target, timeoutMs, false),
    };
  }

  private connectIn(network: PodNetwork, target: { address: string; port: number }, timeoutMs: number, asInbound: boolean): Promise<Duplex> {
    const family = isIPv6(target.address) ? 6 : 4;
    // Delivering into a pod: from 127.0.0.6, which no capture hook touches (IPv6: from
    // the pod's own address, which sk_lookup skips as a self-connection).
    const bindAddress = asInbound && family === 4 ? INBOUND_PASSTHROUGH_SOURCE : undefined;
    return new Promise((resolve, reject) => {
      let socket: Socket;
      try {
        socket = network.connect({ family, address: target.address, port: target.port, timeoutMs, ...(bindAddress ? { bindAddress } : {}) });
      } catch (err) {
        reject(err);
        return;
      }
      socket.setNoDelay(true);
      socket.once('connect', () => { socket.removeListener('error', reject); resolve(socket); });
      socket.once('error', reject);
    });
  }

  /**
   * An endpoint of a Service port for a connection-level hand-off (TCP, TLS, upgrades):
   * ready endpoints, outlier-ejected ones left out, the Service's load balancer.
   */
  pickEndpoint(config: ProxyConfig, service: ServiceInfo, port: ServicePort, family: 4 | 6): Endpoint | undefined {
    const eps = config.snapshot.readyEndpoints(service, port, family);
    const policy = this.config.policies.forService(cachedServiceKey(service));
    return policy.pick(eps.map((e) => ({ key: endpointKey(e.address, e.port), e })))?.e;
  }

  /** WebSocket upgrades and CONNECT: replay the request head to the target and pipe bytes. */
  private passThrough(conn: ConnectionInfo, rawHead: Buffer, socket: Socket, rest: Buffer): void {
    const config = this.config.current;
    const svc = config.snapshot.serviceByClusterIP(conn.original.address, conn.original.port);
    let target = { address: conn.original.address, port: conn.original.port };
    if (svc?.port) {
      const ep = this.pickEndpoint(config, svc.service, svc.port, conn.original.family);
      if (!ep) {
        socket.end('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
        return;
      }
      target = { address: ep.address, port: ep.port };
    }
    this.transportFor(conn, target).open(target, 5000).then(
      (upstream) => {
        upstream.write(rawHead);
        if (rest.length) upstream.write(rest);
        void relay(socket, upstream as Socket);
      },
      (err: unknown) => {
        this.logger.debug({ err: describeError(err) }, 'pass-through connect failed');
        socket.end('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      },
    );
  }

  activeConnections(): number {
    let n = 0;
    for (const p of this.pods.values()) n += p.proxy.activeConnections;
    return n;
  }

  /** The sockets open now, by pod and kind (what a drain would wait for): `/debug/open`. */
  openConnections(): OpenSocket[] {
    return [...this.pods.values()].flatMap((p) => p.proxy.describeActive());
  }

  /**
   * Graceful drain, bounded: stop listening and send GOAWAY on HTTP/2 sessions at once; let
   * open connections finish until `graceMs` has passed (or `cut` aborts: a second signal);
   * then destroy everything still open (client sockets, pooled upstream connections and
   * sessions, tunnel sessions). Nothing a peer does or fails to do can make this take much
   * longer than `graceMs`.
   */
  async close(graceMs = 0, cut?: AbortSignal): Promise<void> {
    const deadlineAt = Date.now() + graceMs;
    const entries = [...this.pods.values()];
    this.pods.clear();
    this.podsByIP.clear();
    await Promise.all(entries.map((e) => e.proxy.stop(false)));
    this.frontend.close();
    this.tunnelServer.close();
    this.logger.info({ open: entries.reduce((n, e) => n + e.proxy.activeConnections, 0), graceMs }, 'listeners closed: draining');
    const drained = await pollUntil(() => entries.every((e) => e.proxy.activeConnections === 0), deadlineAt, cut);
    if (!drained) {
      const open = entries.flatMap((e) => e.proxy.describeActive());
      this.logger.warn({ open: open.length, connections: open.slice(0, 20), graceMs, cut: cut?.aborted ?? false }, 'drain over: closing the connections still open');
    }
    await Promise.all(entries.map((e) => e.proxy.stop(true)));
    this.frontend.destroy();
    this.tunnelServer.destroy();
    // Idle pooled sessions get a GOAWAY; at the deadline (already now when the drain ran
    // out or was cut) the rest is destroyed, so a frozen peer cannot hold the process.
    const sessionsBy = cut?.aborted ? Date.now() : deadlineAt;
    await Promise.all([this.pools.close(), this.sessions.close(sessionsBy), this.tunnelClient.close(sessionsBy)]);
    if (this.accessLog) {
      await withDeadline(this.accessLog.close(), ACCESS_LOG_FLUSH_MS, 'flushing the access log').catch((err: unknown) => {
        this.logger.warn({ err: describeError(err) }, 'access log not flushed');
      });
    }
  }
}

/** How long the access log may take to flush its last lines at shutdown (a full disk, a stuck pipe). */
const ACCESS_LOG_FLUSH_MS = 1000;
