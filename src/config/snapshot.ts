import { MESH_MODES, MODE_KEY, podKey, serviceKey, type Endpoint, type MeshMode, type NamespaceInfo, type PodInfo, type ServiceInfo, type ServicePort } from '../mesh/model';
import { resolveEndpoints, type ResolveOptions } from './endpoints';
import { canonicalIP } from './ip';
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
  others?: readonly OtherObject[];
}

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
   * name), resolved from the pods of this snapshot.
   */
  endpointsFor(service: string | ServiceInfo, port: ServicePort | number | string, options: ResolveOptions = {}): Endpoint[] {
    const svc = this.service(service);
    if (!svc) return [];
    const servicePort =
      typeof port === 'object' ? svc.ports.find((p) => p.port === port.port && p.protocol === port.protocol) : svc.ports.find((p) => (typeof port === 'number' ? p.port === port : p.name === port));
    if (!servicePort) return [];
    return resolveEndpoints(svc, servicePort, this.pods.values(), options);
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
