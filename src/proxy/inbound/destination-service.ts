import type { PodInfo, ServiceInfo } from '../../mesh/model';
import { protocolFromAppProtocol, type Protocol } from '../protocol/sniff';
import type { ProxyConfig } from '../proxy-config';
import { parseAuthority } from '../tunnel/tunnel-protocol';

/** The Service of an inbound connection, and the protocol its port declares (appProtocol or port name), if any. */
export interface InboundService {
  service: ServiceInfo;
  declared: Protocol | undefined;
}

const servingCache = new WeakMap<ProxyConfig, Map<string, InboundService | null>>();

/**
 * The Service that the destination's telemetry names (destination_service*) for what
 * arrives at a pod's port, as Istio's inbound side names it: the Service the source
 * addressed, when the tunnel stream says (its original destination is a cluster IP and
 * port); else the Service of the pod's namespace that serves the pod on that port (the
 * first by name when several do); undefined when none does (a call to the pod's IP on a
 * port no Service exposes).
 */
export function inboundService(config: ProxyConfig, pod: PodInfo, port: number, originalDestination?: string): InboundService | undefined {
  const original = parseAuthority(originalDestination);
  if (original) {
    const addressed = config.snapshot.serviceByClusterIP(original.address, original.port);
    if (addressed?.port && addressed.service.namespace === pod.namespace) return { service: addressed.service, declared: protocolFromAppProtocol(addressed.port.appProtocol, addressed.port.name) };
  }
  return servingService(config, pod, port);
}

/** Kept per configuration (snapshots never change): asked for every inbound connection. */
function servingService(config: ProxyConfig, pod: PodInfo, port: number): InboundService | undefined {
  let byPodPort = servingCache.get(config);
  if (!byPodPort) {
    byPodPort = new Map();
    servingCache.set(config, byPodPort);
  }
  const key = `${pod.namespace}/${pod.name}:${port}`;
  let found = byPodPort.get(key);
  if (found === undefined) {
    found = null;
    const candidates = [...config.snapshot.services.values()].filter((s) => s.namespace === pod.namespace).sort((a, b) => a.name.localeCompare(b.name));
    search: for (const svc of candidates) {
      for (const p of svc.ports) {
        for (const family of [4, 6] as const) {
          if (config.snapshot.endpointsFor(svc, p, { includeNotReady: true, family }).some((e) => e.port === port && pod.ips.includes(e.address))) {
            found = { service: svc, declared: protocolFromAppProtocol(p.appProtocol, p.name) };
            break search;
          }
        }
      }
    }
    byPodPort.set(key, found);
  }
  return found ?? undefined;
}
