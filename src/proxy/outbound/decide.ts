import { isIPv6 } from 'node:net';
import { cachedServiceKey, type Endpoint, type PodInfo, type ServiceInfo, type ServicePort } from '../../mesh/model';
import type { WorkloadInfo } from '../../mesh/workload-identity';
import type { ProxyAddress } from '../connection-info';
import type { ProxyConfig } from '../proxy-config';
import { protocolFromAppProtocol, type Protocol } from '../protocol/sniff';

/**
 * Where an outbound connection goes and how, decided from the configuration and the
 * connection's facts alone: no sockets, no state. The outbound handler then does what the
 * decision says (sniff, route per request, pick an endpoint, open the transport); tests
 * exercise every branch here without root.
 */

/** The facts of a connection a pod opened, as capture recorded them. */
export interface OutboundFacts {
  /** The pod whose outbound listener accepted the connection. */
  source: PodInfo;
  /** SO_ORIGINAL_DST: what the app connected to. */
  original: ProxyAddress;
  /** The capture self-test port (connections to the pod's own IP on it are answered by the proxy). */
  probePort: number;
}

export type OutboundDestination =
  /** The capture self-test: the proxy answers itself. */
  | { kind: 'probe' }
  /**
   * A Service port: HTTP is routed per request, anything else relayed to one of `endpoints`
   * (ready, of the connection's family) that the Service's load balancer picks (policies
   * under `policyKey`). `protocol` is set when the port's appProtocol says it (no sniffing).
   */
  | { kind: 'service'; service: ServiceInfo; port: ServicePort; endpoints: readonly Endpoint[]; protocol: Protocol | undefined; policyKey: string; source: WorkloadInfo }
  /** A pod of the mesh by its IP: HTTP gets the pipeline (telemetry, no routes), else a relay. */
  | { kind: 'pod'; pod: PodInfo; destination: WorkloadInfo; source: WorkloadInfo }
  /** Outside the mesh: relayed as bytes, with no sniffing (server-first protocols stay fast). */
  | { kind: 'passthrough'; source: WorkloadInfo };

export function decideOutbound(config: ProxyConfig, facts: OutboundFacts): OutboundDestination {
  const { original, source } = facts;
  if (original.port === facts.probePort && source.ips.includes(original.address)) return { kind: 'probe' };
  const sourceIdentity = config.workload(source);
  const svc = config.snapshot.serviceByClusterIP(original.address, original.port);
  if (svc?.port) {
    return {
      kind: 'service',
      service: svc.service,
      port: svc.port,
      endpoints: config.snapshot.readyEndpoints(svc.service, svc.port, original.family),
      protocol: protocolFromAppProtocol(svc.port.appProtocol, svc.port.name),
      policyKey: cachedServiceKey(svc.service),
      source: sourceIdentity,
    };
  }
  const pod = config.snapshot.podByIP(original.address);
  if (pod) return { kind: 'pod', pod, destination: config.workload(pod), source: sourceIdentity };
  return { kind: 'passthrough', source: sourceIdentity };
}

/** What the transport decision needs to know about this node. */
export interface TransportFacts {
  /** The node this proxy serves; undefined in sidecar mode. */
  nodeName: string | undefined;
  tunnelEnabled: boolean;
  tunnelPort: number;
  /** Whether the source pod is still enrolled here (a released pod's connections cannot open new ones). */
  sourceEnrolled: boolean;
  /** The enrolled pod of this node at an address, if any. */
  localPodAt(address: string): PodInfo | undefined;
}

export type TransportDecision =
  /** An enrolled pod of this node: in-process hand-over, a socket made in its namespace. */
  | { kind: 'local'; pod: PodInfo; expect: WorkloadInfo }
  /**
   * An enrolled pod of another node, or a pod with its own sidecar (`node` then names
   * the sidecar): a CONNECT stream through that node's proxy (or that sidecar), to the
   * lowest IP there of the endpoint's family among the enrolled pods with the destination's
   * identity (so every source picks the same one, and the certificate that 15008 presents
   * is the destination's own). `present` is the source's identity; `expect` who must answer.
   * `strict`: the destination's port is STRICT (PeerAuthentication), so when no proxy
   * answers there the connection fails rather than go in plaintext.
   */
  | { kind: 'tunnel'; node: string; via: { address: string; port: number }; present: WorkloadInfo; expect: WorkloadInfo; strict: boolean }
  /** Anything else: a socket from the source pod's namespace (its own source address). */
  | { kind: 'direct' }
  /** The source pod left this node: nothing may be opened on its behalf. */
  | { kind: 'source-gone' };

/**
 * A destination port whose PeerAuthentication says DISABLE is reached in plaintext,
 * without the tunnel, as Istio's clients do.
 */
export function decideTransport(config: ProxyConfig, facts: TransportFacts, source: PodInfo, endpoint: { address: string; port: number }): TransportDecision {
  const local = facts.localPodAt(endpoint.address);
  if (local) return { kind: 'local', pod: local, expect: config.workload(local) };
  if (!facts.sourceEnrolled) return { kind: 'source-gone' };
  const dstPod = config.snapshot.podByIP(endpoint.address);
  if (!dstPod || !facts.tunnelEnabled || dstPod.hostNetwork) return { kind: 'direct' };
  // Who answers 15008 for the destination: its node's proxy (ambient, on another node than
  // this proxy's; a sidecar, which has no node of its own, reaches every ambient pod so),
  // or the destination's own sidecar (on any node, this one included).
  const dstMode = config.snapshot.effectiveMode(dstPod);
  const viaNode = dstMode === 'ambient' && dstPod.nodeName !== facts.nodeName;
  if (!viaNode && dstMode !== 'sidecar') return { kind: 'direct' };
  const mode = config.peerAuthentication.modeFor(dstPod, endpoint.port).mode;
  if (mode === 'DISABLE') return { kind: 'direct' };
  const family = isIPv6(endpoint.address) ? 6 : 4;
  const expect = config.workload(dstPod);
  const candidates = viaNode ? tunnelAddressesOf(config, dstPod.nodeName, expect.principal) : dstPod.ips;
  const via = candidates.find((ip) => (isIPv6(ip) ? 6 : 4) === family);
  if (!via) return { kind: 'direct' };
  return { kind: 'tunnel', node: viaNode ? dstPod.nodeName : `sidecar ${dstPod.namespace}/${dstPod.name}`, via: { address: via, port: facts.tunnelPort }, present: config.workload(source), expect, strict: mode === 'STRICT' };
}

function isAmbient(config: ProxyConfig, pod: PodInfo): boolean {
  return !pod.hostNetwork && config.snapshot.effectiveMode(pod) === 'ambient';
}

const tunnelAddresses = new WeakMap<ProxyConfig, Map<string, string[]>>();

/**
 * The addresses of a node's enrolled pods with an identity, where its proxy listens on
 * 15008 with that identity's certificate, sorted (kept per configuration).
 */
export function tunnelAddressesOf(config: ProxyConfig, nodeName: string, principal: string | undefined): readonly string[] {
  let byNode = tunnelAddresses.get(config);
  if (!byNode) {
    byNode = new Map();
    for (const pod of config.snapshot.pods.values()) {
      if (!isAmbient(config, pod)) continue;
      const key = `${pod.nodeName}|${config.workload(pod).principal ?? ''}`;
      const list = byNode.get(key) ?? [];
      list.push(...pod.ips);
      byNode.set(key, list);
    }
    for (const list of byNode.values()) list.sort();
    tunnelAddresses.set(config, byNode);
  }
  return byNode.get(`${nodeName}|${principal ?? ''}`) ?? [];
}
