import type { PodInfo } from './model';

/**
 * A pod of the mesh model for tests: ready, one IP, no ports, in namespace "demo" on
 * "node-1", unless `extra` says otherwise.
 */
export function testPod(name: string, extra: Partial<PodInfo> = {}): PodInfo {
  return {
    name,
    namespace: 'demo',
    uid: `uid-${name}`,
    labels: {},
    annotations: {},
    nodeName: 'node-1',
    ips: ['10.244.1.10'],
    hostNetwork: false,
    serviceAccount: 'default',
    containerPorts: [],
    ready: true,
    ...extra,
  };
}
