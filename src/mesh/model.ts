/**
 * The mesh as nodemesh sees it: the parts of Kubernetes objects that capture, routing and
 * telemetry need. Every configuration source (YAML directory, Kubernetes API) produces
 * these; nothing downstream reads raw Kubernetes objects.
 */

/** Pod annotation / namespace label that opts pods in or out. */
export const MODE_KEY = 'nodemesh.dev/mode';
export type MeshMode = 'ambient' | 'sidecar' | 'off';
export const MESH_MODES: readonly MeshMode[] = ['ambient', 'sidecar', 'off'];

export interface NamespaceInfo {
  name: string;
  labels: Record<string, string>;
}

export interface PodInfo {
  name: string;
  namespace: string;
  uid: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  nodeName: string;
  /** status.podIPs (first one is status.podIP). */
  ips: string[];
  hostNetwork: boolean;
  serviceAccount: string;
  /** Container ports, for inbound capture and the simulator's test servers. */
  containerPorts: Array<{ name?: string; port: number; protocol: string }>;
  /** True when the pod is Ready (all containers); the simulator's pods always are. */
  ready: boolean;
  /**
   * The workload the pod belongs to, from its controller owner reference (telemetry's
   * `*_workload` labels): a ReplicaSet named `<deployment>-<pod-template-hash>` stands for
   * its Deployment, a Job named `<cronjob>-<8 to 10 digits>` for its CronJob; a pod with
   * no owner (or an owner of another kind) is its own workload.
   */
  workload?: WorkloadRef;
}

export type WorkloadKind = 'Deployment' | 'StatefulSet' | 'DaemonSet' | 'Job' | 'CronJob' | 'ReplicaSet' | 'Pod';

export interface WorkloadRef {
  kind: WorkloadKind;
  name: string;
}

export interface ServicePort {
  name?: string;
  port: number;
  /** A number, or the name of a container port. */
  targetPort: number | string;
  protocol: string;
  appProtocol?: string;
}

export interface ServiceInfo {
  name: string;
  namespace: string;
  /** spec.clusterIPs; empty for headless Services. */
  clusterIPs: string[];
  ports: ServicePort[];
  /** spec.selector; undefined when endpoints are managed elsewhere (EndpointSlices). */
  selector: Record<string, string> | undefined;
}

/** One endpoint of a discovery.k8s.io/v1 EndpointSlice. */
export interface EndpointSliceEndpoint {
  /** addresses[0], canonical (the API says the addresses are fungible: use the first). */
  address: string;
  /** conditions.ready; absent means true. */
  ready: boolean;
  /** conditions.serving; absent means the same as ready. */
  serving: boolean;
  /** conditions.terminating; absent means false. */
  terminating: boolean;
  nodeName?: string;
  /** namespace/name of the pod behind it, from targetRef (kind Pod). */
  podKey?: string;
  zone?: string;
}

export interface EndpointSlicePort {
  /** The Service port's name ('' for an unnamed port): how slice ports are matched. */
  name: string;
  /** undefined: the slice says nothing about the port number (not usable for routing). */
  port: number | undefined;
  protocol: string;
  appProtocol?: string;
}

/** A discovery.k8s.io/v1 EndpointSlice: part of the endpoints of one Service. */
export interface EndpointSliceInfo {
  name: string;
  namespace: string;
  /** Label kubernetes.io/service-name; undefined when the slice belongs to no Service. */
  serviceName: string | undefined;
  addressType: 'IPv4' | 'IPv6' | 'FQDN';
  ports: EndpointSlicePort[];
  endpoints: EndpointSliceEndpoint[];
}

/** A resolved endpoint of a Service port. */
export interface Endpoint {
  address: string;
  port: number;
  /** The pod behind it, when known (namespace/name). */
  podKey?: string;
  nodeName?: string;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
}

export function podKey(pod: { namespace: string; name: string }): string {
  return `${pod.namespace}/${pod.name}`;
}

export function serviceKey(svc: { namespace: string; name: string }): string {
  return `${svc.namespace}/${svc.name}`;
}

const serviceKeys = new WeakMap<object, string>();
const serviceHosts = new WeakMap<object, string>();

/**
 * serviceKey of a Service object, made once per object: the proxy looks routes, policies
 * and budgets up by it for every request, and a string it has used before costs no new
 * concatenation nor hashing.
 */
export function cachedServiceKey(svc: ServiceInfo): string {
  let key = serviceKeys.get(svc);
  if (key === undefined) {
    key = serviceKey(svc);
    serviceKeys.set(svc, key);
  }
  return key;
}

/** The Service's cluster-local FQDN (name.namespace.svc.cluster.local), made once per object. */
export function serviceHost(svc: ServiceInfo): string {
  let host = serviceHosts.get(svc);
  if (host === undefined) {
    host = `${svc.name}.${svc.namespace}.svc.cluster.local`;
    serviceHosts.set(svc, host);
  }
  return host;
}
