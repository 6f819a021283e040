import {
  MESH_MODES,
  MODE_KEY,
  cachedServiceKey,
  podKey,
  serviceKey,
  type Endpoint,
  type EndpointSliceInfo,
  type MeshMode,
  type NamespaceInfo,
  type PodInfo,
  type ServiceInfo,
  type ServicePort,
} from '../mesh/model';
import { CowMap, HolderIndex, compareStrings } from './copy-on-write';
import { resolveEndpoints, selectorMatches, serviceFamily, type ResolveOptions } from './endpoints';
import { canonicalIP, type IpFamily } from './ip';
import { sameItems } from '../util/same-items';
import type { OtherObject } from './objects';

/**
 * One immutable view of the mesh. Sources report a complete view for every change; the
 * proxy swaps the reference atomically and in-flight requests keep the one they started
 * with. Everything reachable from a snapshot is frozen.
 *
 * Built from the previous snapshot (`MeshSnapshot.from(input, version, previous)`), a
 * snapshot costs in proportion to what changed, by structural sharing: an input object the
 * previous snapshot was built from (the same reference: sources keep unchanged objects'
 * references and never modify an object they handed in) reuses its frozen copy; maps and
 * indexes nothing touched are the previous snapshot's own; per-Service endpoint caches
 * carry over unless the Service, its EndpointSlices or (without slices) a pod its selector
 * matches changed. A first snapshot is the same build from the empty one, so an
 * incremental build and a full one cannot drift (snapshot.test.ts compares them).
 */

export interface SnapshotInput {
  namespaces: readonly NamespaceInfo[];
  pods: readonly PodInfo[];
  services: readonly ServiceInfo[];
  /** EndpointSlices (from a cluster); a Service that has any is resolved from them alone. */
  endpointSlices?: readonly EndpointSliceInfo[];
  /**
   * Endpoints come from EndpointSlices only (the Kubernetes source): the pods a node agent
   * sees are its own node's, so endpoints derived from pod selectors would be partial.
   */
  endpointsFromSlicesOnly?: boolean;
  others?: readonly OtherObject[];
  /**
   * What the source's parsers made of some kinds of `others` (by kind name, see
   * src/kinds), so that the proxy configuration does not parse them a second time.
   */
  parsed?: ParsedKinds;
}

/** Parsed configuration by kind name; each kind's entry in src/kinds knows its type. */
export type ParsedKinds = Readonly<Record<string, unknown>>;

export interface ServiceMatch {
  service: ServiceInfo;
  /** The matching port; undefined when the lookup gave no port. */
  port: ServicePort | undefined;
}

export interface ModeDecision {
  mode: MeshMode;
  /** Why: "pod annotation", "namespace label", "hostNetwork", "agent pod", "default". */
  reason: string;
}

export interface ModeOptions {
  /** namespace/name of the agent's own pod, which is never captured. */
  agentPodKey?: string;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value as Record<string, unknown>)) deepFreeze(inner);
  }
  return value;
}

function isMode(value: string | undefined): value is MeshMode {
  return value !== undefined && (MESH_MODES as readonly string[]).includes(value);
}

type ByFamily = { 4?: readonly Endpoint[]; 6?: readonly Endpoint[] };
/** One Service's ready endpoints per port object (ports of the snapshot's frozen Service copy). */
type EndpointCache = WeakMap<ServicePort, ByFamily>;

/** What a collection's objects became: the new map, and each object that came, went or changed. */
interface Diff<T> {
  map: ReadonlyMap<string, T>;
  changes: Array<{ before: T | undefined; after: T | undefined }>;
}

const EMPTY_MAP: ReadonlyMap<string, never> = new Map<string, never>();

interface Inputs {
  namespaces: readonly NamespaceInfo[];
  pods: readonly PodInfo[];
  services: readonly ServiceInfo[];
  slices: readonly EndpointSliceInfo[];
}

/** What a snapshot reads of the one before it (the empty one for a first snapshot). */
interface Base {
  inputs: Inputs;
  namespaces: ReadonlyMap<string, NamespaceInfo>;
  pods: ReadonlyMap<string, PodInfo>;
  services: ReadonlyMap<string, ServiceInfo>;
  others: readonly OtherObject[];
  endpointSlices: ReadonlyMap<string, readonly EndpointSliceInfo[]>;
  slicesOnly: boolean;
  slices: ReadonlyMap<string, EndpointSliceInfo>;
  podsByIP: ReadonlyMap<string, readonly PodInfo[]>;
  servicesByIP: ReadonlyMap<string, readonly ServiceInfo[]>;
  podsByNamespace: ReadonlyMap<string, ReadonlyMap<string, PodInfo>>;
  selectingByNamespace: ReadonlyMap<string, ReadonlyMap<string, ServiceInfo>>;
  endpointCaches: ReadonlyMap<string, EndpointCache>;
}

const NOTHING: Base = {
  inputs: { namespaces: [], pods: [], services: [], slices: [] },
  namespaces: EMPTY_MAP,
  pods: EMPTY_MAP,
  services: EMPTY_MAP,
  others: Object.freeze([]),
  endpointSlices: EMPTY_MAP,
  slicesOnly: false,
  slices: EMPTY_MAP,
  podsByIP: EMPTY_MAP,
  servicesByIP: EMPTY_MAP,
  podsByNamespace: EMPTY_MAP,
  selectingByNamespace: EMPTY_MAP,
  endpointCaches: EMPTY_MAP,
};

export class MeshSnapshot {
  /** namespace name -> namespace. Namespaces only referenced by objects are absent. */
  readonly namespaces: ReadonlyMap<string, NamespaceInfo>;
  /** namespace/name -> pod. */
  readonly pods: ReadonlyMap<string, PodInfo>;
  /** namespace/name -> service. */
  readonly services: ReadonlyMap<string, ServiceInfo>;
  readonly others: readonly OtherObject[];
  /** See SnapshotInput.parsed. Not copied: parsed values are immutable by contract. */
  readonly parsed: ParsedKinds;
  /** Service namespace/name -> its EndpointSlices, sorted by slice name. */
  readonly endpointSlices: ReadonlyMap<string, readonly EndpointSliceInfo[]>;
  private readonly slicesOnly: boolean;
  /** Input object -> its frozen copy; one table along a line of snapshots (a cache, no state). */
  private readonly copies: WeakMap<object, object>;
  /** Slice namespace/name -> slice. */
  private readonly slices: ReadonlyMap<string, EndpointSliceInfo>;
  private readonly podsByIP: ReadonlyMap<string, readonly PodInfo[]>;
  private readonly servicesByIP: ReadonlyMap<string, readonly ServiceInfo[]>;
  /** namespace -> its pods, for selectors (empty when endpoints come from slices only). */
  private readonly podsByNamespace: ReadonlyMap<string, ReadonlyMap<string, PodInfo>>;
  /** namespace -> its Services with a selector (as podsByNamespace). */
  private readonly selectingByNamespace: ReadonlyMap<string, ReadonlyMap<string, ServiceInfo>>;
  /** Service key -> ready endpoints computed so far; carried over for unchanged Services. */
  private readonly endpointCaches: Map<string, EndpointCache>;
  private readonly inputs: Inputs;

  private constructor(
    /** Increases with every snapshot a source produces. */
    readonly version: number,
    input: SnapshotInput,
    previous: MeshSnapshot | undefined,
  ) {
    this.copies = previous?.copies ?? new WeakMap();
    const intern = <T extends object>(value: T): T => {
      let copy = this.copies.get(value) as T | undefined;
      if (copy === undefined) {
        copy = deepFreeze(structuredClone(value));
        this.copies.set(value, copy);
        this.copies.set(copy, copy);
      }
      return copy;
    };
    const before: Base = previous ? (previous as unknown as Base) : NOTHING;
    // The lists as given, kept to spot a list that is the same as last time at the cost of comparing references.
    this.inputs = { namespaces: [...input.namespaces], pods: [...input.pods], services: [...input.services], slices: [...(input.endpointSlices ?? [])] };
    const namespaces = diff(before.namespaces, before.inputs.namespaces, input.namespaces, (ns) => ns.name, intern);
    const pods = diff(before.pods, before.inputs.pods, input.pods, podKey, intern);
    const services = diff(before.services, before.inputs.services, input.services, serviceKey, intern);
    const slices = diff(before.slices, before.inputs.slices, this.inputs.slices, podKey, intern, (s) => s.serviceName !== undefined);
    this.namespaces = namespaces.map;
    this.pods = pods.map;
    this.services = services.map;
    this.slices = slices.map;
    this.slicesOnly = input.endpointsFromSlicesOnly === true;

    const others = (input.others ?? []).map(intern);
    this.others = others.length === before.others.length && others.every((o, i) => o === before.others[i]) ? before.others : Object.freeze(others);
    this.parsed = Object.freeze({ ...input.parsed });

    // Indexes: the previous ones, with the changed objects' entries moved.
    const podsByIP = new HolderIndex<PodInfo>(before.podsByIP, podKey);
    for (const { before: old, after } of pods.changes) {
      // hostNetwork pods share their node's address: it does not identify them.
      if (old && !old.hostNetwork) for (const ip of old.ips) podsByIP.remove(ip, old);
      if (after && !after.hostNetwork) for (const ip of after.ips) podsByIP.add(ip, after);
    }
    this.podsByIP = podsByIP.done();
    const servicesByIP = new HolderIndex<ServiceInfo>(before.servicesByIP, serviceKey);
    for (const { before: old, after } of services.changes) {
      if (old) for (const ip of old.clusterIPs) servicesByIP.remove(ip, old);
      if (after) for (const ip of after.clusterIPs) servicesByIP.add(ip, after);
    }
    this.servicesByIP = servicesByIP.done();

    const dirty = new Set<string>();
    const byService = new CowMap(before.endpointSlices);
    const touched = new Set<string>();
    for (const { before: old, after } of slices.changes) {
      for (const s of [old, after]) if (s) touched.add(sliceServiceKey(s));
    }
    for (const key of touched) {
      dirty.add(key);
      const list = byServiceSlices(key, this.slices, before.endpointSlices.get(key), slices.changes);
      if (list.length === 0) byService.delete(key);
      else byService.set(key, list);
    }
    this.endpointSlices = byService.done();
    for (const { before: old, after } of services.changes) dirty.add(serviceKey((old ?? after)!));

    const carried = before.endpointCaches;
    if (this.slicesOnly !== before.slicesOnly) {
      this.podsByNamespace = this.slicesOnly ? EMPTY_MAP : groupByNamespace(this.pods.values(), podKey);
      this.selectingByNamespace = this.slicesOnly ? EMPTY_MAP : groupByNamespace([...this.services.values()].filter((s) => s.selector !== undefined), serviceKey);
      this.endpointCaches = new Map();
    } else {
      this.podsByNamespace = this.slicesOnly ? EMPTY_MAP : regroup(before.podsByNamespace, pods.changes, podKey);
      this.selectingByNamespace = this.slicesOnly ? EMPTY_MAP : regroup(before.selectingByNamespace, services.changes.map(({ before: b, after: a }) => ({ before: b?.selector ? b : undefined, after: a?.selector ? a : undefined })), serviceKey);
      // A changed pod changes the endpoints of the Services whose selector matches it,
      // before or after (only Services with endpoints computed so far need to know).
      if (!this.slicesOnly && carried.size > 0 && pods.changes.length > 0) {
        if (pods.changes.length > carried.size) for (const key of carried.keys()) dirty.add(key);
        else {
          for (const { before: old, after } of pods.changes) {
            for (const p of [old, after]) {
              if (!p) continue;
              const selecting = this.selectingByNamespace.get(p.namespace);
              if (selecting) for (const [key, svc] of selecting) if (selectorMatches(svc.selector, p.labels)) dirty.add(key);
            }
          }
        }
      }
      this.endpointCaches = new Map(carried);
      for (const key of dirty) this.endpointCaches.delete(key);
    }
    Object.freeze(this);
  }

  /**
   * A snapshot of `input`. With `previous` (the last snapshot of the same source), what
   * did not change is shared with it (see the class comment); the result is the same
   * either way.
   */
  static from(input: SnapshotInput, version: number, previous?: MeshSnapshot): MeshSnapshot {
    return new MeshSnapshot(version, input, previous);
  }

  static empty(): MeshSnapshot {
    return EMPTY;
  }

  /** The (non-hostNetwork) pod holding an address; IPv4-mapped IPv6 is accepted. */
  podByIP(ip: string): PodInfo | undefined {
    const canonical = canonicalIP(ip);
    return canonical === undefined ? undefined : this.podsByIP.get(canonical)?.[0];
  }

  /**
   * The Service behind a cluster IP; with a port, only when the Service exposes that
   * port with that protocol (otherwise the destination is not a Service port).
   */
  serviceByClusterIP(ip: string, port?: number, protocol = 'TCP'): ServiceMatch | undefined {
    const canonical = canonicalIP(ip);
    const service = canonical === undefined ? undefined : this.servicesByIP.get(canonical)?.[0];
    if (!service) return undefined;
    if (port === undefined) return { service, port: undefined };
    const match = service.ports.find((p) => p.port === port && p.protocol === protocol);
    return match ? { service, port: match } : undefined;
  }

  /** namespace/name or a ServiceInfo -> the Service in this snapshot. */
  service(ref: string | ServiceInfo): ServiceInfo | undefined {
    return this.services.get(typeof ref === 'string' ? ref : serviceKey(ref));
  }

  /**
   * Ready endpoints of a Service port (given as the ServicePort, its port number or its
   * name); with includeNotReady, every endpoint with its ready/serving/terminating
   * conditions. From the Service's EndpointSlices when it has any (a cluster), otherwise
   * from the pods its selector matches (the embedded source and the simulator).
   */
  endpointsFor(service: string | ServiceInfo, port: ServicePort | number | string, options: ResolveOptions = {}): Endpoint[] {
    const svc = this.service(service);
    if (!svc) return [];
    const servicePort =
      typeof port === 'object' ? svc.ports.find((p) => p.port === port.port && p.protocol === port.protocol) : svc.ports.find((p) => (typeof port === 'number' ? p.port === port : p.name === port));
    if (!servicePort) return [];
    const slices = this.endpointSlices.get(serviceKey(svc));
    if (slices !== undefined && slices.length > 0) return sliceEndpoints(svc, servicePort, slices, options);
    if (this.slicesOnly) return [];
    return resolveEndpoints(svc, servicePort, this.podsByNamespace.get(svc.namespace)?.values() ?? [], options);
  }

  /**
   * The endpoints traffic may go to (ready and not terminating) of a Service port, in one
   * family: computed once and shared (snapshots never change; the next snapshot keeps
   * them while their inputs are unchanged), since the proxy asks for every request. Do
   * not modify the returned array.
   */
  readyEndpoints(service: ServiceInfo, port: ServicePort, family: IpFamily): readonly Endpoint[] {
    // Keyed by the port object (ports belong to one Service of this snapshot): no key string per call.
    const key = cachedServiceKey(service);
    let cache = this.endpointCaches.get(key);
    if (!cache) {
      cache = new WeakMap();
      this.endpointCaches.set(key, cache);
    }
    let byFamily = cache.get(port);
    if (!byFamily) {
      byFamily = {};
      cache.set(port, byFamily);
    }
    let eps = byFamily[family];
    if (!eps) {
      eps = Object.freeze(this.endpointsFor(service, port, { family }).filter((e) => e.ready && !e.terminating));
      byFamily[family] = eps;
    }
    return eps;
  }

  /** The mode a pod runs in, with the rule that decided it (DESIGN.md "Opt-in"). */
  modeDecision(pod: PodInfo, options: ModeOptions = {}): ModeDecision {
    if (pod.hostNetwork) return { mode: 'off', reason: 'hostNetwork pods are never captured' };
    if (options.agentPodKey !== undefined && podKey(pod) === options.agentPodKey) return { mode: 'off', reason: "the agent's own pod is never captured" };
    const annotation = pod.annotations[MODE_KEY];
    if (isMode(annotation)) return { mode: annotation, reason: `pod annotation ${MODE_KEY}=${annotation}` };
    const label = this.namespaces.get(pod.namespace)?.labels[MODE_KEY];
    if (isMode(label)) return { mode: label, reason: `namespace ${pod.namespace} label ${MODE_KEY}=${label}` };
    return { mode: 'off', reason: 'no annotation on the pod nor label on its namespace' };
  }

  /** Pod annotation wins over namespace label; hostNetwork never captured; default off. */
  effectiveMode(pod: PodInfo, options: ModeOptions = {}): MeshMode {
    return this.modeDecision(pod, options).mode;
  }
}

const EMPTY: MeshSnapshot = MeshSnapshot.from({ namespaces: [], pods: [], services: [] }, 0);

/**
 * The objects of one collection against the previous snapshot's: the previous map itself
 * when every object is the one it had (by reference, after interning), else a new map and
 * what changed. Of two objects with one key the last wins.
 */
function diff<T extends object>(
  previous: ReadonlyMap<string, T>,
  previousInputs: readonly T[],
  inputs: readonly T[],
  keyOf: (value: T) => string,
  intern: (value: T) => T,
  keep: (value: T) => boolean = () => true,
): Diff<T> {
  if (sameItems(previousInputs, inputs)) return { map: previous, changes: [] };
  return inPlace(previous, previousInputs, inputs, keyOf, intern, keep) ?? fullDiff(previous, inputs, keyOf, intern, keep);
}

/**
 * The common changes, in the order sources keep their objects: some objects replaced under
 * the same key (edits), and either some taken out (removals) or some new ones put in
 * (additions). Only those positions cost; undefined when the change has another shape
 * (objects moved or renamed, removals with additions, a key seen before added), which the
 * full diff handles.
 */
function inPlace<T extends object>(
  previous: ReadonlyMap<string, T>,
  previousInputs: readonly T[],
  inputs: readonly T[],
  keyOf: (value: T) => string,
  intern: (value: T) => T,
  keep: (value: T) => boolean,
): Diff<T> | undefined {
  const changes: Diff<T>['changes'] = [];
  const map = new CowMap(previous);
  // Removals can only be as many as the list shrank by, plus what the tail adds back.
  let removable = Math.max(0, previousInputs.length - inputs.length);
  // Likewise insertions (objects added anywhere: a directory lists its files by name).
  let insertable = Math.max(0, inputs.length - previousInputs.length);
  const owned = (value: T): boolean => keep(value) && previous.get(keyOf(value)) === value;
  let i = 0;
  let j = 0;
  while (i < inputs.length && j < previousInputs.length) {
    const input = inputs[i]!;
    const old = previousInputs[j]!;
    if (input === old) {
      i++;
      j++;
      continue;
    }
    const before = intern(old);
    const after = intern(input);
    if (keep(after) && owned(before) && keyOf(before) === keyOf(after)) {
      if (before !== after) {
        map.set(keyOf(after), after);
        changes.push({ before, after });
      }
      i++;
      j++;
    } else if (removable > 0 && owned(before)) {
      map.delete(keyOf(before));
      changes.push({ before, after: undefined });
      removable--;
      j++;
    } else if (insertable > 0 && keep(after) && !previous.has(keyOf(after)) && !map.has(keyOf(after))) {
      map.set(keyOf(after), after);
      changes.push({ before: undefined, after });
      insertable--;
      i++;
    } else return undefined;
  }
  for (; j < previousInputs.length; j++) {
    const before = intern(previousInputs[j]!);
    if (!owned(before)) return undefined;
    map.delete(keyOf(before));
    changes.push({ before, after: undefined });
  }
  for (; i < inputs.length; i++) {
    const after = intern(inputs[i]!);
    if (!keep(after)) return undefined;
    const key = keyOf(after);
    // A key the previous snapshot had (a move, a rename back) or twice among the new: the full diff decides.
    if (previous.has(key) || map.has(key)) return undefined;
    map.set(key, after);
    changes.push({ before: undefined, after });
  }
  return { map: map.done(), changes };
}

function fullDiff<T extends object>(previous: ReadonlyMap<string, T>, inputs: readonly T[], keyOf: (value: T) => string, intern: (value: T) => T, keep: (value: T) => boolean): Diff<T> {
  const values = inputs.filter(keep).map(intern);
  if (values.length === previous.size && values.every((v) => previous.get(keyOf(v)) === v)) return { map: previous, changes: [] };
  const map = new Map<string, T>();
  for (const v of values) map.set(keyOf(v), v);
  const changes: Diff<T>['changes'] = [];
  for (const [key, after] of map) {
    const old = previous.get(key);
    if (old !== after) changes.push({ before: old, after });
  }
  for (const [key, old] of previous) if (!map.has(key)) changes.push({ before: old, after: undefined });
  return { map, changes };
}

function sliceServiceKey(slice: EndpointSliceInfo): string {
  return serviceKey({ namespace: slice.namespace, name: slice.serviceName! });
}

/** A Service's slices after the changes, sorted by name. */
function byServiceSlices(key: string, slices: ReadonlyMap<string, EndpointSliceInfo>, old: readonly EndpointSliceInfo[] | undefined, changes: Diff<EndpointSliceInfo>['changes']): readonly EndpointSliceInfo[] {
  const byName = new Map<string, EndpointSliceInfo>();
  for (const s of old ?? []) byName.set(s.name, s);
  for (const { before, after } of changes) {
    if (before && sliceServiceKey(before) === key) byName.delete(before.name);
    if (after && sliceServiceKey(after) === key && slices.get(podKey(after)) === after) byName.set(after.name, after);
  }
  return Object.freeze([...byName.values()].sort((a, b) => compareStrings(a.name, b.name)));
}

function groupByNamespace<T extends { namespace: string }>(values: Iterable<T>, keyOf: (value: T) => string): ReadonlyMap<string, ReadonlyMap<string, T>> {
  const out = new Map<string, Map<string, T>>();
  for (const v of values) {
    let inner = out.get(v.namespace);
    if (!inner) out.set(v.namespace, (inner = new Map()));
    inner.set(keyOf(v), v);
  }
  return out;
}

/** A namespace index after the changes: each namespace touched copied once, the others shared. */
function regroup<T extends { namespace: string }>(previous: ReadonlyMap<string, ReadonlyMap<string, T>>, changes: ReadonlyArray<{ before: T | undefined; after: T | undefined }>, keyOf: (value: T) => string): ReadonlyMap<string, ReadonlyMap<string, T>> {
  if (changes.length === 0) return previous;
  const outer = new CowMap(previous);
  const copied = new Map<string, Map<string, T>>();
  const inner = (ns: string): Map<string, T> => {
    let m = copied.get(ns);
    if (!m) {
      m = new Map(previous.get(ns) ?? []);
      copied.set(ns, m);
    }
    return m;
  };
  for (const { before, after } of changes) {
    if (before && inner(before.namespace).get(keyOf(before)) === before) inner(before.namespace).delete(keyOf(before));
    if (after) inner(after.namespace).set(keyOf(after), after);
  }
  for (const [ns, m] of copied) {
    if (m.size === 0) outer.delete(ns);
    else outer.set(ns, m);
  }
  return outer.done();
}

/**
 * Endpoints of one Service port from its EndpointSlices: slice ports are named after the
 * Service port (an unnamed port is ''), the address family is the slice's addressType
 * (default: the family of the Service's first cluster IP; IPv4 first for a headless
 * Service), and an endpoint listed in two slices (while the controller moves it) counts
 * once, its ready copy first. Sorted by address like the pod-selector path.
 */
function sliceEndpoints(service: ServiceInfo, port: ServicePort, slices: readonly EndpointSliceInfo[], options: ResolveOptions): Endpoint[] {
  let family: IpFamily | undefined = options.family ?? serviceFamily(service);
  if (family === undefined) family = slices.some((s) => s.addressType === 'IPv4') ? 4 : 6;
  const addressType = family === 4 ? 'IPv4' : 'IPv6';
  const byAddress = new Map<string, Endpoint>();
  for (const slice of slices) {
    if (slice.addressType !== addressType) continue;
    const slicePort = slice.ports.find((p) => p.name === (port.name ?? '') && p.protocol === port.protocol);
    if (slicePort === undefined || slicePort.port === undefined) continue;
    for (const ep of slice.endpoints) {
      if (!ep.ready && !options.includeNotReady) continue;
      const endpoint: Endpoint = { address: ep.address, port: slicePort.port, ready: ep.ready, serving: ep.serving, terminating: ep.terminating };
      if (ep.podKey !== undefined) endpoint.podKey = ep.podKey;
      if (ep.nodeName !== undefined) endpoint.nodeName = ep.nodeName;
      const key = `${ep.address}|${slicePort.port}`;
      const seen = byAddress.get(key);
      if (seen === undefined || (!seen.ready && endpoint.ready)) byAddress.set(key, endpoint);
    }
  }
  return [...byAddress.values()].sort((a, b) => (a.address === b.address ? a.port - b.port : a.address < b.address ? -1 : 1));
}
