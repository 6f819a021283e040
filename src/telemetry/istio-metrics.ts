import { Gauge, type Registry } from 'prom-client';
import { packageVersion } from '../util/package-version';
import type { WorkloadInfo } from '../mesh/workload-identity';
import { LruCache } from '../util/lru-cache';
import { DURATION_BUCKETS_MS, REQUEST_LABELS, securityPolicy, SIZE_BUCKETS_BYTES, TCP_LABELS, type RequestLabels, type TcpLabels } from './istio-labels';
import { CounterFamily, HistogramFamily, observe, registerFamilies, type CounterCell, type HistogramCell } from './metric-family';
import type { Reporter } from './reporter';

/**
 * Istio's standard metrics (https://istio.io/latest/docs/reference/config/metrics/), with
 * Istio's names, label names, label values and default buckets, so that Istio's Grafana
 * dashboards and Kiali read nodemesh's node proxy as they read Envoy sidecars or ztunnel.
 * The agent's own health stays under nodemesh_* (src/proxy/metrics.ts).
 * Which side reports a leg: ./reporter.ts. Label names, values and buckets:
 * ./istio-labels.ts. The series storage: ./metric-family.ts.
 *
 * ## The hot path
 *
 * prom-client's Counter/Histogram validate and re-hash the whole label object on every
 * call: with Istio's 25 labels, ~4 µs per call and 13-20 µs per request for the four
 * request metrics, cached label objects or not (src/bench/istio-metrics-bench.ts). So the
 * eight metrics keep their own series (one cell per label set, keyed by the label values)
 * and register in the given prom-client Registry, which scrapes them like its own. In
 * front of them a bounded LRU (`labelCacheSize`, default 4096 entries), keyed by one short
 * string built from the request's dimensions (interned ids of the source, destination and
 * service, and reporter, protocol, code, gRPC status, flags, mTLS), holds per combination
 * the frozen label object and direct references to its cells in all four metrics. A request whose
 * combination is cached costs a few WeakMap lookups, one string build, one Map lookup and
 * a few additions (~0.5-0.7 µs on the 2-CPU dev VM). Evicting an entry loses nothing (the
 * cells stay in the metrics); that combination just rebuilds its labels once. Series, as
 * in every Prometheus client, live as long as the process (label cardinality is bounded by
 * the mesh: workloads x services x codes x flags), and a scrape formats each series' label
 * set once (prom-client caches it per label object).
 */

export interface DestinationServiceInfo {
  name: string;
  namespace: string;
  /** FQDN: b.demo.svc.cluster.local */
  host: string;
}

export interface RequestRecord {
  reporter: Reporter;
  source?: WorkloadInfo;
  destination?: WorkloadInfo;
  destinationService?: DestinationServiceInfo;
  protocol: 'http' | 'grpc';
  /** HTTP status; 0 when no response was sent (as Envoy reports it). */
  responseCode: number;
  grpcStatus?: number;
  /** Envoy response flags, "-" (or "") for none. */
  responseFlags: string;
  durationMs: number;
  requestBytes: number;
  responseBytes: number;
  /** Whether the leg's connection across the mesh was mutual TLS: see istio-labels.ts (principals, connection_security_policy). */
  mtls?: boolean;
}

export interface TcpLabelsInput {
  reporter: Reporter;
  source?: WorkloadInfo;
  destination?: WorkloadInfo;
  destinationService?: DestinationServiceInfo;
  /** Envoy response flags, "-" (or "" / undefined) for none. */
  responseFlags?: string;
  /** Whether the leg's connection across the mesh was mutual TLS: see istio-labels.ts (principals, connection_security_policy). */
  mtls?: boolean;
}

export interface IstioMetricsOptions {
  /** source_cluster/destination_cluster of known workloads without their own (Istio's cluster ID). Default "Kubernetes", Istio's. */
  clusterId?: string;
  /** The `tag` of istio_build{component="proxy"}: this proxy's version. Default: nodemesh's package version. */
  version?: string;
  /** Entries in each label cache (requests, TCP). Default 4096. */
  labelCacheSize?: number;
}
const UNKNOWN = 'unknown';
/** Istio's default cluster ID (istiod's CLUSTER_ID, the proxies' ISTIO_META_CLUSTER_ID). */
export const DEFAULT_CLUSTER_ID = 'Kubernetes';

interface RequestHandle {
  labels: RequestLabels;
  requests: CounterCell;
  duration: HistogramCell;
  requestBytes: HistogramCell;
  responseBytes: HistogramCell;
}

/** Cells are made on first use, so that a flag seen only at close adds no zero "opened" series. */
interface TcpHandle {
  labels: TcpLabels;
  series: string;
  opened: CounterCell | undefined;
  closed: CounterCell | undefined;
  sent: CounterCell | undefined;
  received: CounterCell | undefined;
}

/** Label values of one side, resolved once per WorkloadInfo / service object. */
interface Peer {
  /** Short interned id for cache keys. */
  id: string;
  name: string;
  namespace: string;
  principal: string;
  app: string;
  version: string;
  canonicalService: string;
  canonicalRevision: string;
  cluster: string;
}

interface Service {
  id: string;
  host: string;
  name: string;
  namespace: string;
}

const SEP = '|';
const UNKNOWN_PEER: Peer = Object.freeze({
  id: '-',
  name: UNKNOWN,
  namespace: UNKNOWN,
  principal: UNKNOWN,
  app: UNKNOWN,
  version: UNKNOWN,
  canonicalService: UNKNOWN,
  canonicalRevision: UNKNOWN,
  cluster: UNKNOWN,
});
const UNKNOWN_SERVICE: Service = Object.freeze({ id: '-', host: UNKNOWN, name: UNKNOWN, namespace: UNKNOWN });

export class IstioMetrics {
  private readonly requestsTotal: CounterFamily;
  private readonly duration: HistogramFamily;
  private readonly requestBytes: HistogramFamily;
  private readonly responseBytes: HistogramFamily;
  private readonly tcpSent: CounterFamily;
  private readonly tcpReceived: CounterFamily;
  private readonly tcpOpenedTotal: CounterFamily;
  private readonly tcpClosedTotal: CounterFamily;
  private readonly requestCache: LruCache<RequestHandle>;
  private readonly tcpCache: LruCache<TcpHandle>;
  private readonly clusterId: string;
  // Workloads and services resolved to their label values and a short id (equal values,
  // equal id), by value and, for frozen objects, by object.
  private readonly peersByObject = new WeakMap<WorkloadInfo, Peer>();
  private readonly servicesByObject = new WeakMap<DestinationServiceInfo, Service>();
  private readonly peersByValue = new Map<string, Peer>();
  private readonly servicesByValue = new Map<string, Service>();
  private nextId = 0;

  constructor(registry: Registry, options: IstioMetricsOptions = {}) {
    this.clusterId = options.clusterId || DEFAULT_CLUSTER_ID;
    const size = options.labelCacheSize ?? 4096;
    this.requestCache = new LruCache(size);
    this.tcpCache = new LruCache(size);

    this.requestsTotal = new CounterFamily('istio_requests_total', 'Requests handled by the node proxy (Istio standard metric).');
    this.duration = new HistogramFamily('istio_request_duration_milliseconds', 'Request duration in milliseconds (Istio standard metric).', DURATION_BUCKETS_MS);
    this.requestBytes = new HistogramFamily('istio_request_bytes', 'HTTP request body sizes in bytes (Istio standard metric).', SIZE_BUCKETS_BYTES);
    this.responseBytes = new HistogramFamily('istio_response_bytes', 'HTTP response body sizes in bytes (Istio standard metric).', SIZE_BUCKETS_BYTES);
    this.tcpSent = new CounterFamily('istio_tcp_sent_bytes_total', 'Bytes sent during response (toward the client) on TCP connections (Istio standard metric).');
    this.tcpReceived = new CounterFamily('istio_tcp_received_bytes_total', 'Bytes received during request (from the client) on TCP connections (Istio standard metric).');
    this.tcpOpenedTotal = new CounterFamily('istio_tcp_connections_opened_total', 'TCP connections opened (Istio standard metric).');
    this.tcpClosedTotal = new CounterFamily('istio_tcp_connections_closed_total', 'TCP connections closed (Istio standard metric).');

    const requestFamilies = [this.requestsTotal, this.duration, this.requestBytes, this.responseBytes];
    const tcpFamilies = [this.tcpSent, this.tcpReceived, this.tcpOpenedTotal, this.tcpClosedTotal];
    // A reset family no longer holds the cells the caches point at: drop those handles.
    for (const f of requestFamilies) f.onReset = () => this.requestCache.clear();
    for (const f of tcpFamilies) f.onReset = () => this.tcpCache.clear();
    registerFamilies(registry, [...requestFamilies, ...tcpFamilies]);
    // Istio's proxies export their build; dashboards read the version from it.
    new Gauge({ name: 'istio_build', help: 'Istio component build info (the node proxy: component="proxy", tag=its version).', labelNames: ['component', 'tag'], registers: [registry] })
      .set({ component: 'proxy', tag: options.version || packageVersion() }, 1);
  }

  /** One HTTP or gRPC request, by the leg that handled it (see reporterForLeg). */
  recordRequest(r: RequestRecord): void {
    const src = this.peer(r.source);
    const dst = this.peer(r.destination);
    const svc = this.service(r.destinationService);
    const flags = r.responseFlags || '-';
    const key =
      r.reporter[0] +
      src.id +
      SEP +
      dst.id +
      SEP +
      svc.id +
      SEP +
      r.protocol[0] +
      r.responseCode +
      SEP +
      (r.grpcStatus === undefined ? '' : r.grpcStatus) +
      SEP +
      flags +
      SEP +
      (r.mtls === undefined ? 'u' : r.mtls ? 'm' : 'n');
    let h = this.requestCache.get(key);
    if (h === undefined) {
      h = this.requestHandle(r, src, dst, svc, flags);
      this.requestCache.set(key, h);
    }
    h.requests.value++;
    observe(h.duration, DURATION_BUCKETS_MS, nonNegative(r.durationMs));
    observe(h.requestBytes, SIZE_BUCKETS_BYTES, nonNegative(r.requestBytes));
    observe(h.responseBytes, SIZE_BUCKETS_BYTES, nonNegative(r.responseBytes));
  }

  /** A TCP connection was opened (by the leg that accepted it). */
  tcpOpened(c: TcpLabelsInput): void {
    const h = this.tcpHandle(c);
    (h.opened ??= this.tcpOpenedTotal.cell(h.series, h.labels)).value++;
  }

  /**
   * Bytes moved so far on an open connection, for long-lived connections (Istio reports
   * these periodically too). Count each byte once: pass deltas, and only the remainder to
   * tcpClosed.
   */
  tcpBytes(c: TcpLabelsInput, sentBytes: number, receivedBytes: number): void {
    this.addBytes(this.tcpHandle(c), nonNegative(sentBytes), nonNegative(receivedBytes));
  }

  /**
   * A TCP connection closed. sentBytes: toward the client (the response direction);
   * receivedBytes: from the client (the request direction); both not yet given to tcpBytes.
   */
  tcpClosed(c: TcpLabelsInput & { sentBytes: number; receivedBytes: number }): void {
    const h = this.tcpHandle(c);
    (h.closed ??= this.tcpClosedTotal.cell(h.series, h.labels)).value++;
    this.addBytes(h, nonNegative(c.sentBytes), nonNegative(c.receivedBytes));
  }

  /** Entries in the label caches (each at most cacheCapacity) and series in the metrics. */
  stats(): { requestCacheEntries: number; tcpCacheEntries: number; cacheCapacity: number; requestSeries: number; tcpSeries: number } {
    return {
      requestCacheEntries: this.requestCache.size,
      tcpCacheEntries: this.tcpCache.size,
      cacheCapacity: this.requestCache.capacity,
      requestSeries: this.requestsTotal.size,
      tcpSeries: Math.max(this.tcpOpenedTotal.size, this.tcpClosedTotal.size, this.tcpSent.size),
    };
  }

  private addBytes(h: TcpHandle, sent: number, received: number): void {
    (h.sent ??= this.tcpSent.cell(h.series, h.labels)).value += sent;
    (h.received ??= this.tcpReceived.cell(h.series, h.labels)).value += received;
  }

  private tcpHandle(c: TcpLabelsInput): TcpHandle {
    const src = this.peer(c.source);
    const dst = this.peer(c.destination);
    const svc = this.service(c.destinationService);
    const flags = c.responseFlags || '-';
    const key = c.reporter[0] + src.id + SEP + dst.id + SEP + svc.id + SEP + flags + SEP + (c.mtls === undefined ? 'u' : c.mtls ? 'm' : 'n');
    let h = this.tcpCache.get(key);
    if (h === undefined) {
      // One literal in label order (spreading 25-key objects is ~30x slower in V8).
      const labels: TcpLabels = Object.freeze({
        reporter: c.reporter,
        source_workload: src.name,
        source_workload_namespace: src.namespace,
        source_principal: c.mtls === true ? src.principal : UNKNOWN,
        source_app: src.app,
        source_version: src.version,
        source_canonical_service: src.canonicalService,
        source_canonical_revision: src.canonicalRevision,
        source_cluster: src.cluster,
        destination_workload: dst.name,
        destination_workload_namespace: dst.namespace,
        destination_principal: c.mtls === true ? dst.principal : UNKNOWN,
        destination_app: dst.app,
        destination_version: dst.version,
        destination_service: svc.host,
        destination_service_name: svc.name,
        destination_service_namespace: svc.namespace,
        destination_canonical_service: dst.canonicalService,
        destination_canonical_revision: dst.canonicalRevision,
        destination_cluster: dst.cluster,
        request_protocol: 'tcp',
        response_flags: flags,
        connection_security_policy: securityPolicy(c.reporter, c.mtls),
      });
      h = { labels, series: seriesKey(TCP_LABELS, labels), opened: undefined, closed: undefined, sent: undefined, received: undefined };
      this.tcpCache.set(key, h);
    }
    return h;
  }

  private requestHandle(r: RequestRecord, src: Peer, dst: Peer, svc: Service, flags: string): RequestHandle {
    const labels: RequestLabels = Object.freeze({
      reporter: r.reporter,
      source_workload: src.name,
      source_workload_namespace: src.namespace,
      source_principal: r.mtls === true ? src.principal : UNKNOWN,
      source_app: src.app,
      source_version: src.version,
      source_canonical_service: src.canonicalService,
      source_canonical_revision: src.canonicalRevision,
      source_cluster: src.cluster,
      destination_workload: dst.name,
      destination_workload_namespace: dst.namespace,
      destination_principal: r.mtls === true ? dst.principal : UNKNOWN,
      destination_app: dst.app,
      destination_version: dst.version,
      destination_service: svc.host,
      destination_service_name: svc.name,
      destination_service_namespace: svc.namespace,
      destination_canonical_service: dst.canonicalService,
      destination_canonical_revision: dst.canonicalRevision,
      destination_cluster: dst.cluster,
      request_protocol: r.protocol,
      response_code: String(r.responseCode),
      grpc_response_status: r.protocol === 'grpc' ? (r.grpcStatus === undefined ? UNKNOWN : String(r.grpcStatus)) : '',
      response_flags: flags,
      connection_security_policy: securityPolicy(r.reporter, r.mtls),
    });
    // Series are keyed by their label values, not by the cache key: inputs that differ but
    // label alike (an http request given a grpcStatus) share one series.
    const series = seriesKey(REQUEST_LABELS, labels);
    return {
      labels,
      requests: this.requestsTotal.cell(series, labels),
      duration: this.duration.cell(series, labels),
      requestBytes: this.requestBytes.cell(series, labels),
      responseBytes: this.responseBytes.cell(series, labels),
    };
  }

  /**
   * The label values of a workload and a short id for cache keys. Frozen objects (what
   * workloadOf returns) are resolved once per object; others, which could change, by value
   * on each call.
   */
  private peer(w: WorkloadInfo | undefined): Peer {
    if (w === undefined) return UNKNOWN_PEER;
    let p = this.peersByObject.get(w);
    if (p !== undefined) return p;
    const name = v(w.name);
    const namespace = v(w.namespace);
    const principal = v(w.principal);
    const app = v(w.app);
    const version = v(w.version);
    const canonicalService = v(w.canonicalService);
    const canonicalRevision = v(w.canonicalRevision);
    const cluster = v(w.cluster || this.clusterId);
    const value = name + SEP + namespace + SEP + principal + SEP + app + SEP + version + SEP + canonicalService + SEP + canonicalRevision + SEP + cluster;
    p = this.peersByValue.get(value);
    if (p === undefined) {
      p = { id: this.newId('w'), name, namespace, principal, app, version, canonicalService, canonicalRevision, cluster };
      this.remember(this.peersByValue, value, p);
    }
    if (Object.isFrozen(w)) this.peersByObject.set(w, p);
    return p;
  }

  private service(s: DestinationServiceInfo | undefined): Service {
    if (s === undefined) return UNKNOWN_SERVICE;
    let r = this.servicesByObject.get(s);
    if (r !== undefined) return r;
    const host = v(s.host);
    const name = v(s.name);
    const namespace = v(s.namespace);
    const value = host + SEP + name + SEP + namespace;
    r = this.servicesByValue.get(value);
    if (r === undefined) {
      r = { id: this.newId('s'), host, name, namespace };
      this.remember(this.servicesByValue, value, r);
    }
    if (Object.isFrozen(s)) this.servicesByObject.set(s, r);
    return r;
  }

  private newId(prefix: string): string {
    return prefix + (this.nextId++).toString(36);
  }

  /**
   * Bounded like the caches: a full table starts over. Peers already handed out keep their
   * (never reused) ids, so cache keys that hold them stay right; a value seen again just
   * gets a new id and, once, new cache entries.
   */
  private remember<T>(table: Map<string, T>, value: string, item: T): void {
    if (table.size >= 4 * this.requestCache.capacity) table.clear();
    table.set(value, item);
  }
}

function seriesKey(names: readonly string[], labels: Readonly<Record<string, string>>): string {
  let k = '';
  for (const n of names) k += labels[n] + '\u0001';
  return k;
}

function v(value: string | undefined): string {
  return value ? value : UNKNOWN;
}


function nonNegative(n: number): number {
  return n > 0 ? n : 0;
}
