import { isIPv6 } from 'node:net';
import type { Endpoint, PodInfo, ServiceInfo, ServicePort } from '../mesh/model';

/** The parts of a mesh snapshot that destination resolution reads. */
export interface DestinationView {
  serviceByClusterIP(ip: string, port: number): { service: ServiceInfo; port: ServicePort | undefined } | undefined;
  endpointsFor(service: ServiceInfo, port: ServicePort, options?: { family?: 4 | 6 }): Endpoint[];
  podByIP(ip: string): PodInfo | undefined;
}

export type Resolution =
  | { kind: 'service'; service: string; address: string; port: number; endpoint: Endpoint }
  | { kind: 'pod'; pod: string; address: string; port: number }
  | { kind: 'passthrough'; address: string; port: number }
  | { kind: 'no-endpoints'; service: string };

/**
 * Original destination → where to connect. A Service ClusterIP picks one of its ready
 * endpoints (round robin per Service port; the L7 issue brings real load balancing), a pod
 * IP goes straight to that pod, and anything else passes through to where it was going.
 */
export class DestinationResolver {
  private readonly cursors = new Map<string, number>();

  resolve(view: DestinationView, address: string, port: number): Resolution {
    const svc = view.serviceByClusterIP(address, port);
    if (svc?.port) {
      const key = `${svc.service.namespace}/${svc.service.name}:${svc.port.port}`;
      // A Service reached over one family is served by endpoints of that family.
      const family = isIPv6(address) ? 6 : 4;
      const ready = view.endpointsFor(svc.service, svc.port, { family }).filter((e) => e.ready && !e.terminating);
      if (ready.length === 0) return { kind: 'no-endpoints', service: key };
      const cursor = this.cursors.get(key) ?? 0;
      this.cursors.set(key, (cursor + 1) % ready.length);
      const endpoint = ready[cursor % ready.length]!;
      return { kind: 'service', service: key, address: endpoint.address, port: endpoint.port, endpoint };
    }
    const pod = view.podByIP(address);
    if (pod) return { kind: 'pod', pod: `${pod.namespace}/${pod.name}`, address, port };
    return { kind: 'passthrough', address, port };
  }
}

export function describeResolution(r: Resolution): string {
  switch (r.kind) {
    case 'service':
      return `service ${r.service}`;
    case 'pod':
      return `pod ${r.pod}`;
    case 'passthrough':
      return 'passthrough';
    case 'no-endpoints':
      return `service ${r.service} (no ready endpoints)`;
  }
}
