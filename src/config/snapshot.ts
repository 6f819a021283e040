import {
  MESH_MODES,
  MODE_KEY,
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
import { resolveEndpoints, serviceFamily, type ResolveOptions } from './endpoints';
import { canonicalIP, type IpFamily } from './ip';
import type { OtherObject } from './objects';

/**
 * One immutable view of the mesh. Sources build a new snapshot for every change; the
 * proxy swaps the reference atomically and in-flight requests keep the one they started
 * with. Everything reachable from a snapshot is frozen.
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
  /** Service namespace/name -> its EndpointSlices, by slice name. */
  readonly endpointSlices: ReadonlyMap<string, readonly EndpointSliceInfo[]>;
  private readonly slicesOnly: boolean;
  private readonly readyCache = new WeakMap<ServicePort, { 4?: readonly Endpoint[]; 6?: readonly Endpoint[] }>();
  private readonly byPodIP: ReadonlyMap<string, PodInfo>;
  private readonly byClusterIP: ReadonlyMap<string, ServiceInfo>;

  private constructor(
    /** Increases with every snapshot a source produces. */
    readonly version: number,
    input: SnapshotInput,
  ) {
    const copy = <T>(v: T): T => deepFreeze(structuredClone(v));
    this.namespaces = new Map(input.namespaces.map((ns) => [ns.name, copy(ns)]));
    this.pods = new Map(input.pods.map((pod) => [podKey(pod), copy(pod)]));
    this.services = new Map(input.services.map((svc) => [serviceKey(svc), copy(svc)]));
    this.others = Object.freeze((input.others ?? []).map((o) => copy(o)));
    this.parsed = Object.freeze({ ...input.parsed });
    const slices = new Map<string, EndpointSliceInfo[]>();
    for (const slice of input.endpointSlices ?? []) {
      if (slice.serviceName === undefined) continue;
      const key = serviceKey({ namespace: slice.namespace, name: slice.serviceName });
      const list = slices.get(key) ?? [];
      list.push(copy(slice));
      slices.set(key, list);
    }
    for (const list of slices.values()) Object.freeze(list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)));
    this.endpointSlices = slices;
    this.slicesOnly = input.endpointsFromSlicesOnly === true;
    const byPodIP = new Map<string, PodInfo>();
    for (const pod of this.pods.values()) {
      // hostNetwork pods share their node's address: it does not identify them.
      if (pod.hostNetwork) continue;
      for (const ip of pod.ips) if (!byPodIP.has(ip)) byPodIP.set(ip, pod);
    }
    const byClusterIP = new Map<string, ServiceInfo>();
    for (const svc of this.services.values()) for (const ip of svc.clusterIPs) if (!byClusterIP.has(ip)) byClusterIP.set(ip, svc);
    this.byPodIP = byPodIP;
    this.byClusterIP = byClusterIP;
    Object.freeze(this);
  }

  static from(input: SnapshotInput, version: number): MeshSnapshot {
    return new MeshSnapshot(version, input);
  }

  static empty(): MeshSnapshot {
    return new MeshSnapshot(0, { namespaces: [], pods: [], services: [] });
  }

  /** The (non-hostNetwork) pod holding an address; IPv4-mapped IPv6 is accepted. */
  podByIP(ip: string): PodInfo | undefined {
    const canonical = canonicalIP(ip);
    return canonical === undefined ? undefined : this.byPodIP.get(canonical);
  }

  /**
   * The Service behind a cluster IP; with a port, only when the Service exposes that
   * port with that protocol (otherwise the destination is not a Service port).
   */
  serviceByClusterIP(ip: string, port?: number, protocol = 'TCP'): ServiceMatch | undefined {
    const canonical = canonicalIP(ip);
    const service = canonical === undefined ? undefined : this.byClusterIP.get(canonical);
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
    return resolveEndpoints(svc, servicePort, this.pods.values(), options);
  }

  /**
   * The endpoints traffic may go to (ready and not terminating) of a Service port, in one
   * family: computed once per snapshot and shared (snapshots never change), since the
   * proxy asks for every request. Do not modify the returned array.
   */
  readyEndpoints(service: ServiceInfo, port: ServicePort, family: IpFamily): readonly Endpoint[] {
    // Keyed by the port object (ports belong to one Service of this snapshot): no key string per call.
    let byFamily = this.readyCache.get(port);
    if (!byFamily) {
      byFamily = {};
      this.readyCache.set(port, byFamily);
    }
    let eps = byFamily[family];
    if (!eps) {
      eps = this.endpointsFor(service, port, { family }).filter((e) => e.ready && !e.terminating);
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
