import type { KubeObject } from './fake-apiserver';

/**
 * Builders for the objects tests put into the fake API server: the fields the API server
 * would require and nodemesh reads, nothing else.
 */

export function namespace(name: string, labels: Record<string, string> = {}): KubeObject {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } };
}

export interface PodSpec {
  namespace?: string;
  node?: string;
  ip?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  phase?: string;
  ready?: boolean;
  ports?: Array<{ name?: string; containerPort: number }>;
  owner?: { apiVersion: string; kind: string; name: string; controller?: boolean };
}

export function pod(name: string, spec: PodSpec = {}): KubeObject {
  const ready = spec.ready ?? true;
  const status: Record<string, unknown> = { phase: spec.phase ?? 'Running', conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] };
  if (spec.ip !== undefined) {
    status.podIP = spec.ip;
    status.podIPs = [{ ip: spec.ip }];
  }
  const metadata: NonNullable<KubeObject['metadata']> = { name, namespace: spec.namespace ?? 'default', labels: spec.labels ?? {}, annotations: spec.annotations ?? {} };
  if (spec.owner) metadata.ownerReferences = [{ ...spec.owner, uid: `uid-${spec.owner.name}`, controller: spec.owner.controller ?? true }];
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata,
    spec: { nodeName: spec.node ?? 'node-a', containers: [{ name: 'app', image: 'app', ports: spec.ports ?? [{ name: 'http', containerPort: 8080 }] }] },
    status,
  };
}

export function service(name: string, spec: { namespace?: string; clusterIP?: string; selector?: Record<string, string>; ports?: Array<{ name?: string; port: number; targetPort?: number | string }> } = {}): KubeObject {
  const body: Record<string, unknown> = {
    type: 'ClusterIP',
    clusterIP: spec.clusterIP ?? '10.96.0.10',
    clusterIPs: [spec.clusterIP ?? '10.96.0.10'],
    ports: (spec.ports ?? [{ name: 'http', port: 80, targetPort: 8080 }]).map((p) => ({ protocol: 'TCP', ...p })),
  };
  if (spec.selector) body.selector = spec.selector;
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: spec.namespace ?? 'default' }, spec: body };
}

export interface SliceEndpoint {
  ip: string;
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
  node?: string;
  pod?: string;
}

export function endpointSlice(
  name: string,
  serviceName: string,
  spec: { namespace?: string; addressType?: 'IPv4' | 'IPv6'; ports?: Array<{ name?: string; port: number }>; endpoints?: SliceEndpoint[] } = {},
): KubeObject {
  const ns = spec.namespace ?? 'default';
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: ns, labels: { 'kubernetes.io/service-name': serviceName, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' } },
    addressType: spec.addressType ?? 'IPv4',
    ports: (spec.ports ?? [{ name: 'http', port: 8080 }]).map((p) => ({ protocol: 'TCP', ...p })),
    endpoints: (spec.endpoints ?? []).map((e) => {
      const conditions: Record<string, boolean> = {};
      if (e.ready !== undefined) conditions.ready = e.ready;
      if (e.serving !== undefined) conditions.serving = e.serving;
      if (e.terminating !== undefined) conditions.terminating = e.terminating;
      const endpoint: Record<string, unknown> = { addresses: [e.ip], conditions };
      if (e.node !== undefined) endpoint.nodeName = e.node;
      if (e.pod !== undefined) endpoint.targetRef = { kind: 'Pod', namespace: ns, name: e.pod };
      return endpoint;
    }),
  };
}

export function httpRoute(name: string, serviceName: string, namespaceName = 'default'): KubeObject {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name, namespace: namespaceName },
    spec: { parentRefs: [{ group: '', kind: 'Service', name: serviceName }], rules: [{ backendRefs: [{ name: serviceName, port: 80 }] }] },
  };
}

export function grpcRoute(name: string, serviceName: string, namespaceName = 'default'): KubeObject {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'GRPCRoute',
    metadata: { name, namespace: namespaceName },
    spec: { parentRefs: [{ group: '', kind: 'Service', name: serviceName }], rules: [{ backendRefs: [{ name: serviceName, port: 80 }] }] },
  };
}

export function trafficPolicy(name: string, spec: Record<string, unknown>, namespaceName = 'default'): KubeObject {
  return { apiVersion: 'nodemesh.dev/v1alpha1', kind: 'TrafficPolicy', metadata: { name, namespace: namespaceName }, spec };
}
