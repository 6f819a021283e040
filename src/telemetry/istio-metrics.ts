import type { Histogram, Registry } from 'prom-client';
import type { PodInfo } from '../mesh/model';

/**
 * Istio's standard metrics (https://istio.io/latest/docs/reference/config/metrics/), with
 * Istio's names, label names, label values and default buckets, so that Istio's Grafana
 * dashboards and Kiali read nodemesh's node proxy as they read Envoy sidecars or ztunnel.
 * The agent's own health stays under nodemesh_* (src/proxy/metrics.ts).
 *
 * ## Reporter, and why nothing is counted twice
 *
 * Istio counts every request once per *reporter*: the client side's proxy reports
 * `reporter="source"`, the server side's proxy `reporter="destination"`; dashboards always
 * select one reporter (Kiali mostly `destination`, falling back to `source` for
 * destinations outside the mesh), so a request seen by both ends is never summed twice.
 *
 * nodemesh has one proxy per node, and that proxy may see both ends of a request (both pods
 * on the node). The rule that keeps Istio's "once per reporter" true is:
 *
 *   **The reporter is decided by the leg, never by where the pods are.** A leg accepted on a
 *   pod's *outbound* listener (15001, the app's own connection) reports `source`; a leg
 *   accepted on a pod's *inbound* listeners (15006 plaintext, 15008 tunnel) reports
 *   `destination`. Each leg records each request or connection exactly once, with its one
 *   reporter (`reporterForLeg`).
 *
 * So a same-node request, which today crosses the proxy twice (outbound leg in the client's
 * namespace, then inbound leg in the server's, because the outbound leg's upstream socket is
 * steered into the server pod's inbound listener), yields one `source` sample and one
 * `destination` sample, exactly as two sidecars would. A leg must not also report the other
 * side "because the other pod is local too": that is the double count this rule forbids.
 * Should the proxy ever short-circuit a same-node request in one pass (deliver to the server
 * app without the inbound leg), that one pass plays both roles and records once with
 * `source` and once with `destination`; still one sample per reporter.
 * A request to a destination outside the mesh has only a `source` sample; one from a client
 * outside the mesh only a `destination` sample, as in Istio.
 *
 * ## Label values
 *
 * Unknown values are "unknown", as in Istio. `grpc_response_status` is the gRPC status for
 * `request_protocol="grpc"` ("unknown" when the response carried none) and "" for plain HTTP
 * (absent in Prometheus terms, as Istio's proxies emit it). `connection_security_policy` is
 * "mutual_tls" when the leg used mTLS, "none" when it was plaintext, "unknown" when the
 * caller cannot tell (`mtls` undefined). `response_flags` are Envoy's, "-" for none.
 *
 * ## The hot path
 *
 * prom-client's Counter/Histogram validate and re-hash the whole label object on every
 * call: with Istio's 25 labels, ~4 µs per call and 13-20 µs per request for the four
 * request metrics, cached label objects or not (bench-metrics.ts). So the eight metrics
 * keep their own series (one cell per label set, keyed by the label values) and register
 * in the given prom-client Registry, which scrapes them like its own. In front of them a
 * bounded LRU (`labelCacheSize`, default 4096 entries), keyed by one short string built
 * from the request's dimensions (interned ids of the source, destination and service, and
 * reporter, protocol, code, gRPC status, flags, mTLS), holds per combination the frozen
 * label object and direct references to its cells in all four metrics. A request whose
 * combination is cached costs a few WeakMap lookups, one string build, one Map lookup and
 * a few additions (~0.5-0.7 µs on the 2-CPU dev VM). Evicting an entry loses nothing (the
 * cells stay in the metrics); that combination just rebuilds its labels once. Series, as
 * in every Prometheus client, live as long as the process (label cardinality is bounded by
 * the mesh: workloads x services x codes x flags), and a scrape formats each series' label
 * set once (prom-client caches it per label object).
 */

export type Reporter = 'source' | 'destination';

/** Which listener accepted the leg; decides the reporter (see the module comment). */
export function reporterForLeg(leg: 'outbound' | 'inbound'): Reporter {
  return leg === 'outbound' ? 'source' : 'destination';
}

/** Envoy's response flags that nodemesh sets ("-" when none). Several join with ",". */
export const ResponseFlags = {
  NONE: '-',
  UPSTREAM_OVERFLOW: 'UO',
  UPSTREAM_CONNECT_FAILURE: 'UF',
  NO_HEALTHY_UPSTREAM: 'UH',
  UPSTREAM_RETRY_LIMIT_EXCEEDED: 'URX',
  UPSTREAM_TIMEOUT: 'UT',
  RATE_LIMITED: 'RL',
  FAULT_INJECTED: 'FI',
  DOWNSTREAM_CONNECTION_TERMINATION: 'DC',
  NO_ROUTE: 'NR',
  UPSTREAM_CONNECTION_TERMINATION: 'UC',
} as const;
export type ResponseFlag = (typeof ResponseFlags)[keyof typeof ResponseFlags];

/**
 * A workload as the metrics label it. Treated as immutable: the metrics cache a key per
 * object (workloadOf returns frozen objects).
 */
export interface WorkloadInfo {
  name: string;
  namespace: string;
  app?: string;
  version?: string;
  /** spiffe://cluster.local/ns/<ns>/sa/<sa> */
  principal?: string;
  canonicalService?: string;
  canonicalRevision?: string;
  /** The workload's cluster; defaults to the IstioMetrics' clusterId. */
  cluster?: string;
}

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
  /** true: mutual_tls, false: none, undefined: unknown. */
  mtls?: boolean;
}

export interface TcpLabelsInput {
  reporter: Reporter;
  source?: WorkloadInfo;
  destination?: WorkloadInfo;
  destinationService?: DestinationServiceInfo;
  /** Envoy response flags, "-" (or "" / undefined) for none. */
  responseFlags?: string;
  /** true: mutual_tls, false: none, undefined: unknown. */
  mtls?: boolean;
}

export interface IstioMetricsOptions {
  /** source_cluster/destination_cluster of known workloads without their own; Istio's default is "Kubernetes". Default "unknown". */
  clusterId?: string;
  /** Entries in each label cache (requests, TCP). Default 4096. */
  labelCacheSize?: number;
}

/** Istio's default buckets for istio_request_duration_milliseconds. */
export const DURATION_BUCKETS_MS: readonly number[] = Object.freeze([
  0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000,
]);
/** Istio's default buckets for istio_request_bytes and istio_response_bytes. */
export const SIZE_BUCKETS_BYTES: readonly number[] = Object.freeze([1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000]);

/** Labels shared by every Istio metric, in Istio's order. */
export const PEER_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_canonical_service',
  'source_canonical_revision',
  'source_cluster',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_service',
  'destination_service_name',
  'destination_service_namespace',
  'destination_canonical_service',
  'destination_canonical_revision',
  'destination_cluster',
  'request_protocol',
] as const;
/** Labels of the HTTP/gRPC request metrics. */
export const REQUEST_LABELS = [...PEER_LABELS, 'response_code', 'grpc_response_status', 'response_flags', 'connection_security_policy'] as const;
/** Labels of the TCP metrics (Istio's TCP metrics have no response code). */
export const TCP_LABELS = [...PEER_LABELS, 'response_flags', 'connection_security_policy'] as const;

export type RequestLabels = Readonly<Record<(typeof REQUEST_LABELS)[number], string>>;
export type TcpLabels = Readonly<Record<(typeof TCP_LABELS)[number], string>>;

const UNKNOWN = 'unknown';
const DEFAULT_TRUST_DOMAIN = 'cluster.local';

// ---------------------------------------------------------------------------------------
// workloadOf

/** Characters Kubernetes uses for generated name suffixes (rand.SafeEncodeString). */
const K8S_SUFFIX = '[bcdfghjklmnpqrstvwxz2456789]';
const DEPLOYMENT_POD = new RegExp(`^(.+)-${K8S_SUFFIX}{6,10}-${K8S_SUFFIX}{5}$`);
const GENERATED_SUFFIX = new RegExp(`^(.+)-${K8S_SUFFIX}{5}$`);
const ORDINAL_POD = /^(.+)-\d+$/;

/**
 * The workload a pod belongs to, labelled as Istio labels it.
 *
 * - name: the label `service.istio.io/workload-name` (Istio's override), else the model's
 *   `workload` (from owner references, `{ kind, name }`) when the source filled it in, else
 *   the pod name without its controller's suffix:
 *   Deployment `web-7d9f8b6c5-x2k4q` -> `web`, StatefulSet `db-0` -> `db`, Job (label
 *   `job-name`) -> the job, DaemonSet (label `controller-revision-hash`, no StatefulSet
 *   label) `agent-x2k4q` -> `agent`; a bare pod keeps its name.
 * - app: label `app`, else `app.kubernetes.io/name`; version: `version`, else
 *   `app.kubernetes.io/version`.
 * - canonical service: `service.istio.io/canonical-name` || `app.kubernetes.io/name` ||
 *   `app` || the workload name; canonical revision: `service.istio.io/canonical-revision`
 *   || `app.kubernetes.io/version` || `version` || "latest".
 * - principal: spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount> (default SA
 *   "default").
 */
export function workloadOf(pod: PodInfo, options: { trustDomain?: string; cluster?: string } = {}): WorkloadInfo {
  const labels = pod.labels ?? {};
  const name = labels['service.istio.io/workload-name'] || modelWorkloadName(pod) || workloadNameFromPod(pod.name, labels);
  const app = labels['app'] || labels['app.kubernetes.io/name'] || undefined;
  const version = labels['version'] || labels['app.kubernetes.io/version'] || undefined;
  const info: WorkloadInfo = {
    name,
    namespace: pod.namespace,
    ...(app ? { app } : {}),
    ...(version ? { version } : {}),
    principal: `spiffe://${options.trustDomain ?? DEFAULT_TRUST_DOMAIN}/ns/${pod.namespace}/sa/${pod.serviceAccount || 'default'}`,
    canonicalService: labels['service.istio.io/canonical-name'] || labels['app.kubernetes.io/name'] || labels['app'] || name,
    canonicalRevision: labels['service.istio.io/canonical-revision'] || labels['app.kubernetes.io/version'] || labels['version'] || 'latest',
    ...(options.cluster ? { cluster: options.cluster } : {}),
  };
  return Object.freeze(info);
}

/**
 * The workload the configuration source resolved from the pod's owner references, when the
 * model carries one: `workload: { kind, name }` (or a plain name).
 */
function modelWorkloadName(pod: PodInfo): string | undefined {
  const ref = (pod as { workload?: unknown }).workload;
  if (typeof ref === 'string') return ref || undefined;
  if (typeof ref === 'object' && ref !== null) {
    const name = (ref as { name?: unknown }).name;
    if (typeof name === 'string' && name) return name;
  }
  return undefined;
}

/** The controller's name for a pod name, from the labels controllers set, else its shape. */
export function workloadNameFromPod(podName: string, labels: Record<string, string> = {}): string {
  const job = labels['job-name'] || labels['batch.kubernetes.io/job-name'];
  if (job) return job;
  const hash = labels['pod-template-hash'];
  if (hash) {
    const tail = `-${hash}-`;
    const at = podName.lastIndexOf(tail);
    if (at > 0 && podName.length - (at + tail.length) === 5) return podName.slice(0, at);
    if (podName.endsWith(`-${hash}`) && podName.length > hash.length + 1) return podName.slice(0, podName.length - hash.length - 1);
  }
  if (labels['statefulset.kubernetes.io/pod-name'] === podName || labels['apps.kubernetes.io/pod-index'] !== undefined) {
    const m = ORDINAL_POD.exec(podName);
    if (m) return m[1]!;
  }
  if (labels['controller-revision-hash'] && labels['statefulset.kubernetes.io/pod-name'] === undefined) {
    const m = GENERATED_SUFFIX.exec(podName);
    if (m) return m[1]!;
  }
  // No controller labels: judge by the shape of the name.
  let m = DEPLOYMENT_POD.exec(podName);
  if (m) return m[1]!;
  m = ORDINAL_POD.exec(podName);
  if (m) return m[1]!;
  return podName;
}

// ---------------------------------------------------------------------------------------
// Series storage that plugs into a prom-client Registry

interface CounterCell {
  value: number;
}

interface HistogramCell {
  /** Per bucket (not cumulative); the last slot is +Inf. */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

type Labels = Readonly<Record<string, string>>;

interface ExportValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
  /** prom-client's Registry formats these once per labels object (WeakMap) and appends them. */
  sharedLabels?: Labels;
}

interface ExportedMetric {
  name: string;
  help: string;
  type: string;
  aggregator: string;
  values: ExportValue[];
}

const NO_LABELS: Readonly<Record<string, string>> = Object.freeze({});

/**
 * A metric family whose series IstioMetrics creates and updates directly. It has the shape
 * prom-client's Registry reads (name, help, type, aggregator, get, getForPromString, reset),
 * so `registry.metrics()`, getMetricsAsJSON, merge and resetMetrics treat it as their own.
 * The text exposition passes each series' (stable, frozen) label object as `sharedLabels`,
 * which the Registry formats once and caches, so a scrape costs little per series.
 */
abstract class Family<C> {
  /** Mutable: prom-client renames counters in OpenMetrics mode. */
  name: string;
  readonly help: string;
  readonly aggregator = 'sum';
  protected readonly series = new Map<string, { labels: Labels; cell: C }>();
  onReset: (() => void) | undefined;

  constructor(name: string, help: string) {
    this.name = name;
    this.help = help;
  }

  abstract readonly type: 'counter' | 'histogram';
  protected abstract newCell(): C;
  protected abstract export(values: ExportValue[], labels: Labels, cell: C): void;

  cell(key: string, labels: Labels): C {
    let s = this.series.get(key);
    if (!s) {
      s = { labels, cell: this.newCell() };
      this.series.set(key, s);
    }
    return s.cell;
  }

  get size(): number {
    return this.series.size;
  }

  reset(): void {
    this.series.clear();
    this.onReset?.();
  }

  async getForPromString(): Promise<ExportedMetric> {
    const values: ExportValue[] = [];
    for (const { labels, cell } of this.series.values()) this.export(values, labels, cell);
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** Label objects merged (prom-client's get() shape), for getMetricsAsJSON and merges. */
  async get(): Promise<ExportedMetric> {
    const data = await this.getForPromString();
    data.values = data.values.map(({ value, labels, metricName, sharedLabels }) => ({
      value,
      labels: Object.assign({}, sharedLabels, labels),
      ...(metricName ? { metricName } : {}),
    }));
    return data;
  }
}

class CounterFamily extends Family<CounterCell> {
  readonly type = 'counter' as const;
  protected newCell(): CounterCell {
    return { value: 0 };
  }
  protected export(values: ExportValue[], labels: Labels, cell: CounterCell): void {
    values.push({ value: cell.value, labels: NO_LABELS, sharedLabels: labels });
  }
}

class HistogramFamily extends Family<HistogramCell> {
  readonly type = 'histogram' as const;
  private readonly le: ReadonlyArray<Readonly<Record<string, string | number>>>;
  constructor(name: string, help: string, readonly buckets: readonly number[]) {
    super(name, help);
    this.le = [...buckets.map((b) => Object.freeze({ le: b })), Object.freeze({ le: '+Inf' })];
  }
  protected newCell(): HistogramCell {
    return { counts: new Float64Array(this.buckets.length + 1), sum: 0, count: 0 };
  }
  protected export(values: ExportValue[], labels: Labels, cell: HistogramCell): void {
    const bucketName = `${this.name}_bucket`;
    let acc = 0;
    for (let i = 0; i <= this.buckets.length; i++) {
      acc += cell.counts[i]!;
      values.push({ value: acc, labels: this.le[i] as Record<string, string | number>, metricName: bucketName, sharedLabels: labels });
    }
    values.push({ value: cell.sum, labels: NO_LABELS, metricName: `${this.name}_sum`, sharedLabels: labels });
    values.push({ value: cell.count, labels: NO_LABELS, metricName: `${this.name}_count`, sharedLabels: labels });
  }
}

function observe(cell: HistogramCell, buckets: readonly number[], value: number): void {
  let i = 0;
  const n = buckets.length;
  while (i < n && value > buckets[i]!) i++;
  cell.counts[i]!++;
  cell.sum += value;
  cell.count++;
}

// ---------------------------------------------------------------------------------------
// Bounded LRU

/**
 * A bounded map with least-recently-used eviction, approximated the CLOCK way: a hit only
 * sets a flag (moving the entry on every hit, a Map delete + set, cost more than the rest
 * of recordRequest together); when full, the oldest entries that were hit since they were
 * last looked at get a second chance at the young end, and the first one that was not is
 * evicted. Never holds more than `capacity` entries.
 */
export class LruCache<V> {
  private readonly map = new Map<string, { value: V; hit: boolean }>();
  constructor(readonly capacity: number) {
    if (!(capacity >= 1)) throw new RangeError(`LRU capacity must be at least 1, got ${capacity}`);
  }
  get(key: string): V | undefined {
    const e = this.map.get(key);
    if (e === undefined) return undefined;
    e.hit = true;
    return e.value;
  }
  set(key: string, value: V): void {
    const existing = this.map.get(key);
    if (existing !== undefined) {
      existing.value = value;
      existing.hit = true;
      return;
    }
    if (this.map.size >= this.capacity) this.evictOne();
    this.map.set(key, { value, hit: false });
  }
  has(key: string): boolean {
    return this.map.has(key);
  }
  clear(): void {
    this.map.clear();
  }
  get size(): number {
    return this.map.size;
  }
  private evictOne(): void {
    // At most one full turn: after it every flag is clear, so this ends.
    for (let turns = 0; turns <= this.map.size; turns++) {
      const oldest = this.map.entries().next().value as [string, { value: V; hit: boolean }];
      this.map.delete(oldest[0]);
      if (!oldest[1].hit) return;
      oldest[1].hit = false;
      this.map.set(oldest[0], oldest[1]);
    }
  }
}

// ---------------------------------------------------------------------------------------
// IstioMetrics

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
    this.clusterId = options.clusterId || UNKNOWN;
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
    for (const f of [...requestFamilies, ...tcpFamilies]) registry.registerMetric(f as unknown as Histogram);
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
        source_principal: src.principal,
        source_app: src.app,
        source_version: src.version,
        source_canonical_service: src.canonicalService,
        source_canonical_revision: src.canonicalRevision,
        source_cluster: src.cluster,
        destination_workload: dst.name,
        destination_workload_namespace: dst.namespace,
        destination_principal: dst.principal,
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
        connection_security_policy: securityPolicy(c.mtls),
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
      source_principal: src.principal,
      source_app: src.app,
      source_version: src.version,
      source_canonical_service: src.canonicalService,
      source_canonical_revision: src.canonicalRevision,
      source_cluster: src.cluster,
      destination_workload: dst.name,
      destination_workload_namespace: dst.namespace,
      destination_principal: dst.principal,
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
      connection_security_policy: securityPolicy(r.mtls),
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

function securityPolicy(mtls: boolean | undefined): string {
  return mtls === undefined ? UNKNOWN : mtls ? 'mutual_tls' : 'none';
}

function nonNegative(n: number): number {
  return n > 0 ? n : 0;
}
