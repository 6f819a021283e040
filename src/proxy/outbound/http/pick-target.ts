import type { Endpoint, ServiceInfo } from '../../../mesh/model';
import { endpointKey } from '../../../policy/client/load-balancer';
import type { ServicePolicy } from '../../../policy/client/policy-set';
import type { ConnectionInfo } from '../../connection-info';
import type { HeaderRecord } from '../../http/headers';
import type { ProxyConfig } from '../../proxy-config';

export interface UpstreamTarget {
  key: string;
  address: string;
  port: number;
  endpoint?: Endpoint;
}

/**
 * The endpoint a request is sent to: one of the Service port's ready endpoints (outlier-
 * ejected ones left out) chosen by its load balancer, or the original destination when
 * the request was not for a Service.
 */
export class TargetPicker {
  /** Load-balancer candidates per endpoint list (lists are per snapshot, so this follows config changes). */
  private readonly candidates = new WeakMap<readonly Endpoint[], Array<{ key: string; endpoint: Endpoint }>>();

  constructor(private readonly random: () => number) {}

  pick(config: ProxyConfig, conn: ConnectionInfo, svc: ServiceInfo | undefined, port: number, family: 4 | 6, policy: ServicePolicy | undefined, headers: HeaderRecord): UpstreamTarget | undefined {
    if (!svc) return { key: endpointKey(conn.original.address, conn.original.port), address: conn.original.address, port: conn.original.port };
    const servicePort = svc.ports.find((p) => p.port === port);
    if (!servicePort) return undefined;
    const eps = config.snapshot.readyEndpoints(svc, servicePort, family);
    let candidates = this.candidates.get(eps);
    if (!candidates) {
      candidates = eps.map((e) => ({ key: endpointKey(e.address, e.port), endpoint: e }));
      this.candidates.set(eps, candidates);
    }
    const chosen = policy ? policy.pick(candidates, { hashKey: policy.hashKey((n) => headers[n]) }) : candidates[Math.floor(this.random() * candidates.length)];
    if (!chosen) return undefined;
    return { key: chosen.key, address: chosen.endpoint.address, port: chosen.endpoint.port, endpoint: chosen.endpoint };
  }
}
