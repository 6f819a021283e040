import type { OtherObject } from '../config/objects';
import { MeshSnapshot } from '../config/snapshot';
import type { PodInfo, ServiceInfo } from '../mesh/model';
import { testPod } from '../mesh/testing';
import type { ProxyConfig } from './proxy-config';
import { ProxyConfigStore } from './proxy-config';

/**
 * A small mesh for the outbound and inbound decision tests: two nodes, ambient pods on
 * both (one dual-stack), a sidecar pod, a Service with HTTP and gRPC ports. No sockets.
 */
export function meshPod(name: string, nodeName: string, ips: string[], extra: Partial<PodInfo> = {}): PodInfo {
  return testPod(name, {
    labels: { app: name.replace(/-\d+$/, '') },
    annotations: { 'nodemesh.dev/mode': 'ambient' },
    nodeName,
    ips,
    serviceAccount: `sa-${name}`,
    containerPorts: [{ name: 'http', port: 8080, protocol: 'TCP' }, { name: 'grpc', port: 9090, protocol: 'TCP' }],
    ...extra,
  });
}

export const client = meshPod('client', 'node1', ['10.244.1.10', 'fd00:244:1::10']);
export const localServer = meshPod('server-1', 'node1', ['10.244.1.20']);
export const remoteServer = meshPod('server-2', 'node2', ['10.244.2.20', 'fd00:244:2::20']);
/** Another ambient pod of node2 with a lower IPv4: node2's tunnel address. */
export const remoteOther = meshPod('other', 'node2', ['10.244.2.5']);
export const sidecarPod = meshPod('legacy', 'node2', ['10.244.2.30'], { annotations: { 'nodemesh.dev/mode': 'sidecar' } });

export const serverService: ServiceInfo = {
  name: 'server',
  namespace: 'demo',
  clusterIPs: ['10.96.0.10', 'fd00:96::10'],
  ports: [
    { name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' },
    { name: 'grpc', port: 9090, targetPort: 'grpc', protocol: 'TCP', appProtocol: 'grpc' },
  ],
  selector: { app: 'server' },
};

export function meshConfig(pods: PodInfo[] = [client, localServer, remoteServer, remoteOther, sidecarPod], others: OtherObject[] = []): ProxyConfig {
  return new ProxyConfigStore(MeshSnapshot.from({ namespaces: [], pods, services: [serverService], others }, 1)).current;
}

/** The default mesh with one PeerAuthentication `demo/pa` of this spec. */
export function meshConfigWithPeerAuthentication(spec: Record<string, unknown>): ProxyConfig {
  const object = { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'pa', namespace: 'demo' }, spec };
  return meshConfig(undefined, [{ file: 'pa.yaml', apiVersion: object.apiVersion, kind: object.kind, namespace: 'demo', name: 'pa', object }]);
}
