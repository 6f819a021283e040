import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Registry } from 'prom-client';
import type { PodListenerFds } from '../../capture/backend';
import type { CaptureSettings } from '../../capture/settings';
import { MeshSnapshot } from '../../config/snapshot';
import type { RejectedObject } from '../../config/validation';
import { describeError } from '../../errors';
import { logger } from '../../log';
import { podKey, type PodInfo } from '../../mesh/model';
import { AccessLog, type AccessLogDestination } from '../../telemetry/access-log';
import { IstioMetrics } from '../../telemetry/istio-metrics';
import { pollUntil, withDeadline } from '../../util/deadline';
import { ConnectionLog } from '../connection-log';
import { Inbound } from '../inbound/inbound';
import type { ProxyInputs } from '../inputs';
import type { CredentialLookup } from '../../identity/workload-certificates';
import { LocalPods } from '../local-pods';
import { ProxyMetrics } from '../metrics';
import type { OpenSocket } from '../open-socket';
import { Outbound } from '../outbound/outbound';
import type { PodNetwork } from '../../datapath/pod-network';
import { ProxyConfigStore } from '../proxy-config';
import { PodProxy } from './pod-proxy';
import { closeFds, socketFromFd, stopReading } from '../../datapath/fd-channel';
import { HandableRelays, type HandableRelay, type HandedHttp1, type HandedUpstream, type Http1Meta, type RelayMeta, type UpstreamHttp1Meta } from '../handover/handable-relays';
import type { InheritedListeners, OfferedListener } from '../handover/listeners';
import { adoptTcp } from '../tcp-forward';
import type { HttpFrontend } from '../http/frontend';
import type { Http1Pools } from '../upstream/http1-pools';

export interface NodeProxyOptions {
  /** The node this proxy serves; pods elsewhere are reached through their node's tunnel. */
  nodeName?: string;
  /**
   * Use the HTTP/2 CONNECT tunnel (15008) towards enrolled pods on other nodes and pods
   * with sidecars, and accept it on the pods' 15008 (default on; needs `identity`). A
   * sidecar (no `nodeName`) tunnels to every pod of the mesh.
   */
  tunnel?: boolean;
  /** The workloads' certificates: the tunnel's mutual TLS. Without them there is no tunnel. */
  identity?: CredentialLookup;
  /** Where access logs go; undefined: no access log. */
  accessLog?: AccessLogDestination;
  /** How long to wait for a client's first bytes before treating it as server-first TCP. */
  sniffTimeoutMs?: number;
  /** The trust domain of the workloads' SPIFFE IDs (default cluster.local). */
  trustDomain?: string;
  /** Istio's root namespace for mesh-wide PeerAuthentication (default nodemesh-system). */
  meshRootNamespace?: string;
  /** source_cluster/destination_cluster in telemetry (Istio's CLUSTER_ID; default Kubernetes). */
  clusterId?: string;
}

/** How long the access log may take to flush its last lines at shutdown (a full disk, a stuck pipe). */
const ACCESS_LOG_FLUSH_MS = 1000;
const DEFAULT_SNIFF_TIMEOUT_MS = 200;

/**
 * The one proxy of a node: a PodProxy (listeners) per enrolled pod, wired to the outbound
 * and inbound sides, which share one set of inputs (configuration, this node's pods,
 * telemetry). Adding or removing a pod touches only that pod.
 */
export class NodeProxy {
  readonly log = new ConnectionLog();
  readonly metrics: ProxyMetrics;
  readonly istio: IstioMetrics;
  readonly config: ProxyConfigStore;
  readonly accessLog: AccessLog | undefined;
  private readonly pods = new LocalPods();
  private readonly listeners = new Map<string, PodProxy>();
  private readonly outbound: Outbound;
  private readonly inbound: Inbound;
  private readonly logger = logger('proxy');
  private readonly handable = new HandableRelays();
  private readonly inputs: ProxyInputs;
  /** Listeners a previous agent handed over, for the pods as they are added. */
  private inherited: InheritedListeners | undefined;

  constructor(
    registry: Registry,
    private readonly settings: CaptureSettings,
    private readonly options: NodeProxyOptions = {},
  ) {
    this.config = new ProxyConfigStore(MeshSnapshot.empty(), {
      ...(options.trustDomain !== undefined ? { trustDomain: options.trustDomain } : {}),
      ...(options.meshRootNamespace !== undefined ? { meshRootNamespace: options.meshRootNamespace } : {}),
    });
    this.metrics = new ProxyMetrics(registry);
    this.istio = new IstioMetrics(registry, options.clusterId ? { clusterId: options.clusterId } : {});
    this.accessLog = options.accessLog ? new AccessLog({ destination: options.accessLog }) : undefined;
    const inputs: ProxyInputs = {
      config: this.config,
      pods: this.pods,
      settings,
      nodeName: options.nodeName,
      tunnelEnabled: this.tunnelEnabled,
      identity: options.identity,
      istio: this.istio,
      accessLog: this.accessLog,
      metrics: this.metrics,
      log: this.log,
      logger: this.logger,
      handable: this.handable,
    };
    this.inputs = inputs;
    const sniffTimeoutMs = options.sniffTimeoutMs ?? DEFAULT_SNIFF_TIMEOUT_MS;
    this.outbound = new Outbound(inputs, { sniffTimeoutMs });
    this.inbound = new Inbound(inputs, { sniffTimeoutMs });
  }

  get tunnelEnabled(): boolean {
    return this.options.tunnel !== false && this.options.identity !== undefined;
  }

  /** A new configuration snapshot; requests in flight keep the one they started with. */
  updateSnapshot(snapshot: MeshSnapshot, sourceRejected: readonly RejectedObject[] = []): void {
    this.config.update(snapshot, sourceRejected);
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
      routeStatus: c.routeStatuses,
    };
  }

  /** Starts the pod's listeners (replacing any it had) and returns their descriptors. */
  async addPod(pod: PodInfo, network: PodNetwork): Promise<PodListenerFds> {
    const key = podKey(pod);
    await this.removePod(key);
    const local = { key, pod, network };
    const proxy = new PodProxy({ local, settings: this.settings, outbound: this.outbound, inbound: this.inbound, tunnel: this.tunnelEnabled, metrics: this.metrics });
    // The pod is known before its listeners accept: an inherited listener (hand-over) has
    // connections queued already, and one accepted before this would find its source pod
    // "no longer enrolled" (a gRPC call failed UNAVAILABLE so, once in a few hundred).
    this.pods.add(local);
    let fds: PodListenerFds;
    try {
      fds = await proxy.start(this.inherited);
    } catch (err) {
      this.pods.remove(key);
      throw err;
    }
    this.listeners.set(key, proxy);
    return fds;
  }

  async removePod(key: string, abort = false): Promise<void> {
    const proxy = this.listeners.get(key);
    if (!proxy) return;
    this.listeners.delete(key);
    this.pods.remove(key);
    await proxy.stop(abort);
    await Promise.all([this.outbound.dropPod(key), this.inbound.dropPod(key)]);
  }

  /** Pods added from now on adopt these listeners where one matches (agent hand-over). */
  inheritListeners(inherited: InheritedListeners | undefined): void {
    this.inherited = inherited;
  }

  /** Every pod's listeners, for the next agent. */
  offerListeners(): OfferedListener[] {
    return [...this.listeners.values()].flatMap((p) => p.offerListeners());
  }

  /** Stops accepting on the listeners of these pods (the next agent accepts on them now). */
  pauseListeners(podKeys: ReadonlySet<string>): void {
    for (const [key, p] of this.listeners) if (podKeys.has(key)) p.pauseListeners();
  }

  /** The hand-over failed: accept on every paused listener again. */
  async resumeListeners(): Promise<void> {
    await Promise.all([...this.listeners.values()].map((p) => p.resumeListeners()));
  }

  /** The next agent confirmed: let go of the paused listeners' descriptors. */
  releaseListeners(): void {
    for (const p of this.listeners.values()) p.releaseListeners();
  }

  /** TCP relays the next agent could carry on. */
  handableRelays(): HandableRelay[] {
    return this.handable.list();
  }

  /**
   * Carries on a relay a previous agent handed over. False (the descriptors closed, the
   * sender keeps its copies) when this proxy does not serve that pod.
   */
  adoptRelay(meta: RelayMeta, clientFd: number, upstreamFd: number): boolean {
    const proxy = this.listeners.get(meta.podKey);
    const local = this.pods.get(meta.podKey);
    if (!proxy || !local || local.pod.uid !== meta.podUid) {
      closeFds([clientFd, upstreamFd]);
      return false;
    }
    const client = socketFromFd(clientFd);
    const upstream = socketFromFd(upstreamFd);
    adoptTcp(this.inputs, client, upstream, { ...meta.conn, pod: local.pod }, meta.target, meta.transport ?? { local: false, mtls: false }, proxy.adoptTrack(), meta.startedAt);
    return true;
  }

  /**
   * The HTTP/1.1 connections of these pods' listeners (outbound 15001 and inbound 15006),
   * each given to `take` as soon as it is between requests (busy ones once their response
   * is written out). Inbound, only plain sockets go: a tunnel stream lives in its TLS session.
   */
  handOffHttp1(podKeys: ReadonlySet<string>, take: (handed: HandedHttp1) => void): void {
    for (const direction of ['outbound', 'inbound'] as const) {
      this.frontend(direction).handOffHttp1((socket, conn) => {
        const { pod, ...rest } = conn;
        take({ socket, meta: { podKey: conn.podKey, podUid: pod!.uid, direction, conn: rest } });
      }, (socket, conn) => conn.pod !== undefined && podKeys.has(conn.podKey) && isPlainSocket(socket));
    }
  }

  private frontend(direction: 'outbound' | 'inbound'): HttpFrontend {
    return direction === 'inbound' ? this.inbound.http : this.outbound.http;
  }

  private upstreamPools(side: 'outbound' | 'inbound'): Http1Pools {
    return side === 'inbound' ? this.inbound.pools : this.outbound.pools;
  }

  /** HTTP/1.1 connections still waiting to be handed off. */
  pendingHttp1(): number {
    return this.outbound.http.pendingHttp1() + this.inbound.http.pendingHttp1();
  }

  /** The hand-over stops waiting for busy HTTP/1.1 connections: they are served here. */
  stopHandingOffHttp1(): void {
    this.outbound.http.stopHandingOffHttp1();
    this.inbound.http.stopHandingOffHttp1();
  }

  /** The next agent did not take it: serve it here again. */
  keepHttp1(handed: HandedHttp1): void {
    const local = this.pods.get(handed.meta.podKey);
    if (!local || handed.socket.destroyed) {
      handed.socket.destroy();
      return;
    }
    this.frontend(handed.meta.direction ?? 'outbound').serveHttp1Again(handed.socket, { ...handed.meta.conn, pod: local.pod });
  }

  /**
   * The idle upstream HTTP/1.1 connections of these pods' pools (plain sockets only: direct
   * ones and those into a pod on this node; a tunnel stream lives in its TLS session), out
   * of their pools and stopped reading, for the next agent. What cannot travel is closed:
   * it is idle, nothing is lost.
   */
  takeIdleUpstreams(podKeys: ReadonlySet<string>): HandedUpstream[] {
    const out: HandedUpstream[] = [];
    for (const side of ['outbound', 'inbound'] as const) {
      for (const { key, stream } of this.upstreamPools(side).takeIdle((k) => podKeys.has(podOfPoolKey(k) ?? ''))) {
        const podKey = podOfPoolKey(key)!;
        if (!isPlainSocket(stream)) {
          stream.destroy();
          continue;
        }
        stopReading(stream);
        // Bytes read already (an unsolicited answer, a close) would not travel: not this one.
        if (stream.readableLength > 0) stream.destroy();
        else out.push({ socket: stream, meta: { side, poolKey: key, podKey } });
      }
    }
    return out;
  }

  /** An idle upstream connection a previous agent handed over, into the pool of its key; false when this proxy does not serve its pod. */
  adoptUpstream(meta: UpstreamHttp1Meta, fd: number): boolean {
    if (!this.pods.get(meta.podKey) || podOfPoolKey(meta.poolKey) !== meta.podKey) {
      closeFds([fd]);
      return false;
    }
    const socket = socketFromFd(fd);
    socket.setNoDelay(true);
    socket.on('error', () => undefined);
    this.upstreamPools(meta.side).adoptIdle(meta.poolKey, socket);
    return true;
  }

  /** Serves an idle HTTP/1.1 connection a previous agent handed over; false when this proxy does not serve its pod. */
  adoptHttp1(meta: Http1Meta, fd: number): boolean {
    const proxy = this.listeners.get(meta.podKey);
    const local = this.pods.get(meta.podKey);
    if (!proxy || !local || local.pod.uid !== meta.podUid) {
      closeFds([fd]);
      return false;
    }
    const direction = meta.direction ?? 'outbound';
    const socket = socketFromFd(fd);
    socket.setNoDelay(true);
    socket.on('error', () => undefined);
    proxy.adoptTrack()(socket, direction);
    this.frontend(direction).serveHttp1(socket, { ...meta.conn, pod: local.pod });
    return true;
  }

  has(key: string): boolean {
    return this.listeners.has(key);
  }

  activeConnections(): number {
    let n = 0;
    for (const p of this.listeners.values()) n += p.activeConnections;
    return n;
  }

  /** The sockets open now, by pod and kind (what a drain would wait for): `/debug/open`. */
  openConnections(): OpenSocket[] {
    return [...this.listeners.values()].flatMap((p) => p.describeActive());
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
    const entries = [...this.listeners.values()];
    this.listeners.clear();
    // The pods stay known until the drain is over: a request in flight may still need a
    // new upstream connection or stream on its pod's behalf (a gRPC call that came in
    // just before the GOAWAY), and would otherwise find its source "no longer enrolled".
    await Promise.all(entries.map((e) => e.stop(false)));
    this.outbound.stopAccepting();
    this.inbound.stopAccepting();
    this.logger.info({ open: entries.reduce((n, e) => n + e.activeConnections, 0), graceMs }, 'listeners closed: draining');
    const drained = await pollUntil(() => entries.every((e) => e.activeConnections === 0), deadlineAt, cut);
    if (!drained) {
      const open = entries.flatMap((e) => e.describeActive());
      this.logger.warn({ open: open.length, connections: open.slice(0, 20), graceMs, cut: cut?.aborted ?? false }, 'drain over: closing the connections still open');
    }
    await Promise.all(entries.map((e) => e.stop(true)));
    this.pods.clear();
    // Idle pooled sessions get a GOAWAY; at the deadline (already now when the drain ran
    // out or was cut) the rest is destroyed, so a frozen peer cannot hold the process.
    const poolsDeadline = cut?.aborted ? Date.now() : deadlineAt;
    await Promise.all([this.inbound.destroy(poolsDeadline), this.outbound.destroy(poolsDeadline)]);
    if (this.accessLog) {
      await withDeadline(this.accessLog.close(), ACCESS_LOG_FLUSH_MS, 'flushing the access log').catch((err: unknown) => {
        this.logger.warn({ err: describeError(err) }, 'access log not flushed');
      });
    }
  }
}

/** A kernel socket of its own (not a tunnel stream, not TLS): what can travel as a descriptor. */
function isPlainSocket(socket: Duplex): socket is Socket {
  if (!(socket instanceof Socket) || (socket as { encrypted?: boolean }).encrypted === true) return false;
  const fd = (socket as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0;
}

/** The pod of an upstream pool key (`direct:<pod>|...`, `local:<pod>|...`); undefined for other transports (the tunnel's). */
function podOfPoolKey(key: string): string | undefined {
  return /^(?:direct|local):([^|]+)\|/.exec(key)?.[1];
}
