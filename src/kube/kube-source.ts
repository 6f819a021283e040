import { KubeConfig, Watch } from '@kubernetes/client-node';
import type { ConfigSource, SourceResult } from '../config/config-source';
import type { K8sObject, RawObject } from '../config/k8s-yaml';
import { ObjectConverter, type ConvertedObjects } from '../config/objects';
import { sameSourceResult } from '../config/config-source';
import type { RejectedObject } from '../config/validation';
import { NodemeshError, describeError } from '../errors';
import { logger } from '../log';
import { podKey, serviceKey, type EndpointSliceInfo, type PodInfo } from '../mesh/model';
import { RouteCompiler, type RouteStatus } from '../routing';
import type { ObjectKind } from '../kinds/object-kind';
import { MESH_MEMBER_KIND } from '../kinds/mesh-member';
import { coreKinds, KINDS, KindParser, kindOfResource } from '../kinds/registry';
import type { BackoffOptions } from './backoff';
import { Reflector, type ReflectorStats } from './reflector';
import { MESH_RESOURCES, makeLister, objectPath, type KubeResource } from './resources';
import type { KubeStatusWriter, ObjectVerdict } from './status-writer';

/**
 * The Kubernetes configuration source: the same contract as DirectorySource (load(),
 * watch(onChange, onError), close()), fed by list-and-watch of Namespaces, this node's
 * Pods, Services, EndpointSlices, Gateway API HTTPRoutes and GRPCRoutes, and nodemesh
 * TrafficPolicies (the registry's watched kinds, src/kinds). Every result is built by
 * passing the cached objects through convertObjects, so a cluster's objects get the same
 * checks as a directory's, and through the parsers of the kinds that have one
 * (TrafficPolicy): their verdicts become status, their values travel in `parsed`.
 *
 * - load() resolves after the first full sync of every resource (a CRD that is not
 *   installed counts as synced and empty).
 * - A change after a quiet time is reported at once; changes that follow are coalesced
 *   (debounceMs after the last change, at most maxDelayMs after the first); a result is
 *   reported only when it differs.
 * - Each result is built from the last one: an object whose store entry did not change is
 *   not converted, parsed nor compiled again, and keeps its value (the same reference),
 *   so the snapshot and the proxy configuration built from it redo only what changed.
 * - Pods that have no IP yet (scheduled, not started) or have finished (Succeeded,
 *   Failed: their IP may already belong to another pod) are left out, not rejected.
 * - In `others`, objects come without status, resourceVersion and managedFields: those
 *   change on every status write and are not configuration.
 * - Rejections name the object's API path where the directory source names a file.
 */

export interface KubeSourceResult extends SourceResult {
  endpointSlices: EndpointSliceInfo[];
  endpointsFromSlicesOnly: true;
}

export interface KubeSourceOptions {
  kubeConfig: KubeConfig;
  /** Only pods on this node (field selector spec.nodeName=<nodeName>); all pods when undefined. */
  nodeName: string | undefined;
  /** Quiet time before a change that follows a report is reported (ms, default 50; a change after a quiet time goes at once). */
  debounceMs?: number;
  /** A stream of changes is still reported at least this often (ms, default 500). */
  maxDelayMs?: number;
  /** Reconnect backoff (default 200 ms doubling to 30 s, with jitter). */
  backoff?: BackoffOptions;
  /** Periodic relist of every resource (ms, default 30 min; 0 disables). */
  resyncMs?: number;
  /** How often a CRD that is not installed is looked for again (ms, default 30 s). */
  missingCrdRetryMs?: number;
  /** Server-side watch timeout, randomised up to twice this (s, default 300). */
  watchTimeoutSeconds?: number;
  /** A watch open this long resets the backoff (ms, default 5000). */
  healthyWatchMs?: number;
  /** LIST page size (default 500). */
  pageSize?: number;
  /** Bound on one LIST page or a watch's response headers (ms, default 60 s). */
  requestTimeoutMs?: number;
  /**
   * The registry of kinds (default KINDS): core kinds are converted, kinds with a parser
   * are parsed (rejected ones leave `others`), and those whose status is
   * 'accepted-condition' get one through the status writer.
   */
  kinds?: readonly ObjectKind[];
  /**
   * When set, objects of 'accepted-condition' kinds get an Accepted condition (and Events
   * for rejections). When the writer has a leader gate, gaining leadership writes the
   * latest verdicts again: the new leader fixes whatever the previous one left unwritten.
   */
  statusWriter?: KubeStatusWriter;
  /** Resources to watch (tests); default MESH_RESOURCES (the registry's watched kinds). */
  resources?: readonly KubeResource[];
}

export interface KubeResourceStatus {
  resource: string;
  synced: boolean;
  /** A CRD that is not installed. */
  missing: boolean;
  resourceVersion: string | undefined;
  objects: number;
  stats: ReflectorStats;
}

/** An object whose status the source reports, and where it lives. */
interface Reported {
  object: K8sObject;
  path: string;
  resource: KubeResource;
}

interface Part {
  /** Reflector.storeVersion it was built at. */
  version: number;
  converter: ObjectConverter;
  converted: ConvertedObjects;
  reported: Reported[];
  routes: Reported[];
}

interface Waiter {
  resolve: (result: KubeSourceResult) => void;
  reject: (err: unknown) => void;
}

export class KubeSource implements ConfigSource {
  private readonly log = logger('config', { source: 'kubernetes' });
  private readonly reflectors: Reflector[];
  private readonly debounceMs: number;
  private readonly maxDelayMs: number;
  private readonly kinds: readonly ObjectKind[];
  private readonly nodeName: string | undefined;
  private readonly statusWriter: KubeStatusWriter | undefined;
  private started = false;
  private closed = false;
  private waiters: Waiter[] = [];
  private onChange: ((result: KubeSourceResult) => void) | undefined;
  private onError: (err: unknown) => void;
  private lastResult: KubeSourceResult | undefined;
  /** Per resource: what its store converted to (see part()). */
  private readonly parts = new Map<Reflector, Part>();
  private readonly parser: KindParser;
  private readonly routeCompiler = new RouteCompiler();
  /** A store object -> what convertObjects reads of it (its configuration, its API path). */
  private readonly raws = new WeakMap<K8sObject, RawObject>();
  private timer: NodeJS.Timeout | undefined;
  private dirtySince: number | undefined;
  /** When the last change was reported (ms). */
  private lastReportAt = 0;
  private statusBusy = false;
  private statusNext: ObjectVerdict[] | undefined;
  /** The verdicts of the last result, for a writer that just became the leader. */
  private lastVerdicts: ObjectVerdict[] = [];
  private readonly stopFollowingLeader: (() => void) | undefined;

  constructor(options: KubeSourceOptions) {
    this.debounceMs = options.debounceMs ?? 50;
    this.maxDelayMs = Math.max(this.debounceMs, options.maxDelayMs ?? 500);
    this.kinds = options.kinds ?? KINDS;
    this.parser = new KindParser(this.kinds);
    this.nodeName = options.nodeName;
    this.statusWriter = options.statusWriter;
    this.stopFollowingLeader = options.statusWriter?.leader?.onChange((leading) => {
      if (!leading || !this.synced) return;
      // Built again: a follower leaves route statuses out (see build()).
      this.lastVerdicts = this.build().verdicts;
      if (this.lastVerdicts.length > 0) this.writeStatus(this.lastVerdicts);
    });
    this.onError = (err) => this.log.warn({ err: describeError(err) }, 'Kubernetes API request failed; retrying');
    const watch = new Watch(options.kubeConfig);
    this.reflectors = (options.resources ?? MESH_RESOURCES).map(
      (resource) =>
        new Reflector({
          resource,
          lister: makeLister(options.kubeConfig, resource),
          watch,
          log: this.log,
          ...(isPods(resource) && options.nodeName !== undefined ? { fieldSelector: `spec.nodeName=${options.nodeName}` } : {}),
          ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
          ...(options.pageSize === undefined ? {} : { pageSize: options.pageSize }),
          ...(options.watchTimeoutSeconds === undefined ? {} : { watchTimeoutSeconds: options.watchTimeoutSeconds }),
          ...(options.resyncMs === undefined ? {} : { resyncMs: options.resyncMs }),
          ...(options.missingCrdRetryMs === undefined ? {} : { missingRetryMs: options.missingCrdRetryMs }),
          ...(options.healthyWatchMs === undefined ? {} : { healthyMs: options.healthyWatchMs }),
          ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
          onChange: () => this.changed(),
          onSynced: () => this.resourceSynced(),
          onError: (err) => this.onError(err),
        }),
    );
  }

  /** True once every resource completed its first full sync. */
  get synced(): boolean {
    return this.reflectors.every((r) => r.synced);
  }

  /** Where each resource stands (for /debug and tests). */
  status(): KubeResourceStatus[] {
    return this.reflectors.map((r) => ({
      resource: r.resource.id,
      synced: r.synced,
      missing: r.missing,
      resourceVersion: r.resourceVersion,
      objects: r.store.size,
      stats: { ...r.stats },
    }));
  }

  /**
   * The current result; the first call starts listing and watching and resolves after the
   * first full sync. Rejects if the source is closed first.
   */
  load(): Promise<KubeSourceResult> {
    if (this.closed) return Promise.reject(closedError());
    this.start();
    if (this.synced) return Promise.resolve(this.report(false));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /**
   * Calls onChange with a fresh result whenever the cluster's objects change (debounced).
   * It also reports the result of the first sync, unless load() already returned that same
   * result. onError hears about failures that are being retried (default: a warning log).
   */
  watch(onChange: (result: KubeSourceResult) => void, onError?: (err: unknown) => void): void {
    if (this.closed) throw closedError();
    if (this.onChange) throw new NodemeshError('ERR_NM_SOURCE_WATCHING', 'this KubeSource is already being watched');
    this.onChange = onChange;
    if (onError) this.onError = onError;
    this.start();
    if (this.synced) this.schedule(true);
  }

  /** Stops every list and watch. A pending load() rejects with ERR_NM_SOURCE_CLOSED. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopFollowingLeader?.();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const r of this.reflectors) void r.stop();
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(closedError());
  }

  private start(): void {
    if (this.started) return;
    this.started = true;
    for (const r of this.reflectors) r.start();
  }

  private resourceSynced(): void {
    if (this.closed || !this.synced) return;
    const waiters = this.waiters;
    this.waiters = [];
    if (waiters.length > 0) {
      const result = this.report(false);
      for (const w of waiters) w.resolve(result);
    }
    if (this.onChange) this.schedule(true);
  }

  private changed(): void {
    if (this.closed || !this.synced) return; // the first sync reports everything at once
    this.schedule(false);
  }

  /**
   * A change after a quiet time (no report for debounceMs) is reported at once, with the
   * events that arrive in the same turn of the event loop: a lone change costs no waiting.
   * Changes that follow a report wait for debounceMs of quiet (at most maxDelayMs), so a
   * burst is coalesced into few reports.
   */
  private schedule(now: boolean): void {
    const time = Date.now();
    this.dirtySince ??= time;
    if (this.timer) clearTimeout(this.timer);
    const quiet = time - this.lastReportAt >= this.debounceMs;
    const delay = now || quiet ? 0 : Math.max(0, Math.min(this.debounceMs, this.dirtySince + this.maxDelayMs - time));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.dirtySince = undefined;
      if (this.closed) return;
      // The first sync's report is no change: the next change still goes at once.
      if (!now) this.lastReportAt = Date.now();
      this.report(true);
    }, delay);
  }

  /** Builds the result, hands verdicts to the status writer, and reports it if it changed. */
  private report(notify: boolean): KubeSourceResult {
    const { result, verdicts } = this.build();
    this.lastVerdicts = verdicts;
    if (verdicts.length > 0) this.writeStatus(verdicts);
    const changed = this.lastResult === undefined || !sameSourceResult(result, this.lastResult);
    this.lastResult = result;
    if (notify && changed && this.onChange) {
      try {
        this.onChange(result);
      } catch (err) {
        this.log.error({ err: describeError(err) }, 'the configuration listener threw');
      }
    }
    return result;
  }

  /** One status pass at a time; while one runs, only the latest verdicts wait for the next. */
  private writeStatus(verdicts: ObjectVerdict[]): void {
    const writer = this.statusWriter;
    if (!writer || this.closed) return;
    if (this.statusBusy) {
      this.statusNext = verdicts;
      return;
    }
    this.statusBusy = true;
    writer
      .apply(verdicts)
      .catch((err) => this.log.warn({ err: describeError(err) }, 'writing object status failed'))
      .finally(() => {
        this.statusBusy = false;
        const next = this.statusNext;
        this.statusNext = undefined;
        if (next) this.writeStatus(next);
      });
  }

  /**
   * What one resource's objects convert to, in store order (the LIST's, then new objects
   * as they come): built again only when its store changed, and then only its changed
   * objects are converted (ObjectConverter).
   */
  private part(reflector: Reflector): Part {
    let cached = this.parts.get(reflector);
    if (cached && cached.version === reflector.storeVersion) return cached;
    const r = reflector.resource;
    const kind = kindOfResource(r, this.kinds);
    const pods = isPods(r);
    const raws: RawObject[] = [];
    const reported: Reported[] = [];
    const routes: Reported[] = [];
    for (const object of reflector.store.values()) {
      if (pods && !podIsLive(object)) continue;
      let raw = this.raws.get(object);
      if (raw === undefined) {
        const meta = (object.metadata ?? {}) as Record<string, unknown>;
        const path = objectPath(r, typeof meta.namespace === 'string' ? meta.namespace : undefined, String(meta.name));
        raw = { object: kind?.core ? object : configurationOf(object), file: path, document: 0 };
        this.raws.set(object, raw);
      }
      raws.push(raw);
      if (kind?.status === 'accepted-condition') reported.push({ object, path: raw.file, resource: r });
      if (kind?.status === 'route-parents') routes.push({ object, path: raw.file, resource: r });
    }
    let converter = cached?.converter;
    if (!converter) converter = new ObjectConverter(coreKinds(this.kinds));
    cached = { version: reflector.storeVersion, converter, converted: converter.convert(raws), reported, routes };
    this.parts.set(reflector, cached);
    return cached;
  }

  private build(): { result: KubeSourceResult; verdicts: ObjectVerdict[] } {
    const reported: Reported[] = [];
    const routes: Reported[] = [];
    const parts: ConvertedObjects[] = [];
    for (const reflector of this.reflectors) {
      const part = this.part(reflector);
      parts.push(part.converted);
      reported.push(...part.reported);
      routes.push(...part.routes);
    }
    // One resource's objects have distinct keys, and resources are of distinct kinds: no duplicates across parts.
    const converted: ConvertedObjects = {
      namespaces: parts.flatMap((p) => p.namespaces),
      pods: parts.flatMap((p) => p.pods),
      services: parts.flatMap((p) => p.services),
      endpointSlices: parts.flatMap((p) => p.endpointSlices),
      others: parts.flatMap((p) => p.others),
      rejected: parts.flatMap((p) => p.rejected),
    };
    const { parsed, rejected: extra } = this.parser.parse(converted.others);
    const rejectedPaths = new Set(extra.map((x) => x.file));
    const rejected = [...converted.rejected, ...extra];
    const result: KubeSourceResult = {
      namespaces: converted.namespaces,
      pods: withMembers(converted.pods, parsed[MESH_MEMBER_KIND.name] as PodInfo[] | undefined, this.nodeName),
      services: converted.services,
      endpointSlices: converted.endpointSlices,
      endpointsFromSlicesOnly: true,
      others: converted.others.filter((o) => !rejectedPaths.has(o.file)),
      rejected,
      files: [],
      parsed,
    };
    const reasonsByPath = new Map<string, string[]>();
    for (const x of rejected) reasonsByPath.set(x.file, [...(reasonsByPath.get(x.file) ?? []), stripPrefix(x)]);
    const verdicts: ObjectVerdict[] = reported.map(({ object, path, resource }) => {
      const reasons = reasonsByPath.get(path) ?? [];
      return reasons.length === 0
        ? { object, plural: resource.plural, namespaced: resource.namespaced, accepted: true }
        : { object, plural: resource.plural, namespaced: resource.namespaced, accepted: false, message: reasons.join('; ') };
    });
    // Route statuses need a compile of the routes: only an agent that may write them does it.
    const writer = this.statusWriter;
    if (writer && routes.length > 0 && (!writer.leader || writer.leader.isLeader)) verdicts.push(...routeVerdicts(routes, result, this.routeCompiler));
    return { result, verdicts };
  }
}

/**
 * Every route's status.parents, from one compile of the routes against the Services (as
 * the proxy configuration compiles them). A route with no Service parent gets an empty
 * list, which removes entries nodemesh wrote before its parentRefs changed.
 */
function routeVerdicts(routes: Array<{ object: K8sObject; path: string; resource: KubeResource }>, result: KubeSourceResult, compiler: RouteCompiler): ObjectVerdict[] {
  const paths = new Set(routes.map((r) => r.path));
  const services = new Map(result.services.map((s) => [serviceKey(s), s]));
  const { statuses } = compiler.compile(result.others.filter((o) => paths.has(o.file)), services);
  const byPath = new Map<string, RouteStatus>(statuses.map((s) => [s.file, s]));
  return routes.map(({ object, path, resource }) => ({ object, plural: resource.plural, namespaced: resource.namespaced, parents: byPath.get(path)?.parents ?? [] }));
}

function closedError(): NodemeshError {
  return new NodemeshError('ERR_NM_SOURCE_CLOSED', 'this KubeSource is closed');
}

/**
 * This node's Pods and the other nodes' enrolled pods (MeshMembers): a member of this
 * node, or one named like a Pod seen here, is left out (the Pod object is the truth).
 */
function withMembers(pods: PodInfo[], members: readonly PodInfo[] | undefined, nodeName: string | undefined): PodInfo[] {
  if (!members || members.length === 0 || nodeName === undefined) return pods;
  const seen = new Set(pods.map(podKey));
  const ips = new Set(pods.flatMap((p) => p.ips));
  return [...pods, ...members.filter((m) => m.nodeName !== nodeName && !seen.has(podKey(m)) && !m.ips.some((ip) => ips.has(ip)))];
}

/** A pod with an IP that has not finished. */
function podIsLive(pod: K8sObject): boolean {
  const status = (pod.status ?? {}) as Record<string, unknown>;
  if (status.phase === 'Succeeded' || status.phase === 'Failed') return false;
  return typeof status.podIP === 'string' && status.podIP !== '';
}

/** The Pods resource, which is watched on this node only. */
function isPods(r: KubeResource): boolean {
  return r.group === '' && r.kind === 'Pod';
}

/** What convertObjects sees of the kinds kept as they are: no status or bookkeeping fields. */
function configurationOf(object: K8sObject): K8sObject {
  const { status: _status, ...rest } = object;
  const meta = { ...((object.metadata ?? {}) as Record<string, unknown>) };
  delete meta.resourceVersion;
  delete meta.managedFields;
  return { ...rest, metadata: meta } as K8sObject;
}

/** "PATH: Kind ns/name: spec.x: problem" -> "spec.x: problem" (the object is known where it is shown). */
function stripPrefix(rejected: RejectedObject): string {
  const prefix = `${rejected.file}: ${rejected.object}: `;
  return rejected.reason.startsWith(prefix) ? rejected.reason.slice(prefix.length) : rejected.reason;
}

/**
 * The agent's KubeConfig: the in-cluster service account when running in a pod, else the
 * kubeconfig file (KUBECONFIG or ~/.kube/config), or the given file.
 */
export function loadKubeConfig(file?: string): KubeConfig {
  const kc = new KubeConfig();
  if (file !== undefined) kc.loadFromFile(file);
  else kc.loadFromDefault();
  return kc;
}
