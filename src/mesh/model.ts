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
