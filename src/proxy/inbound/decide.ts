import type { PodInfo } from '../../mesh/model';
import type { WorkloadInfo } from '../../mesh/workload-identity';
import { parseSpiffeId } from '../../identity/spiffe-id';
import { needsL7, type AuthzDecision } from '../../policy/server/authorization/evaluate';
import { authorize, authzDestination } from '../authz-request';
import { deniedBy } from '../authz/denial';
import type { ProxyConfig } from '../proxy-config';

/**
 * Whether a connection or tunnel stream may be delivered to a pod of this node, and who is
 * at either end, decided from the configuration and the connection's facts alone (no
 * sockets): unit-tested without root.
 */

/** The facts of something that arrived for a pod: a plaintext connection on 15006 or a tunnel stream. */
export interface InboundFacts {
  /** Where it is going: the original destination, or the stream's :authority. */
  target: { address: string; port: number };
  /** The enrolled pod of this node at the target address, if any. */
  localPod: PodInfo | undefined;
  /** The peer address of the connection (a tunnel's: the source node's proxy, from inside the source pod). */
  peer: string;
  /** The source's SPIFFE ID from its verified certificate (tunnel streams); absent for plaintext. */
  peerIdentity?: string;
}

export type InboundDecision =
  /**
   * Deliver into the pod's namespace, from 127.0.0.6 (IPv6: the pod's own address).
   * `authorization`: 'connection' when the connection was authorized here (L4: it is
   * relayed as bytes; `authz` is that decision); 'per-request' when a policy of the pod
   * has HTTP rules for the port (`needsL7`): the proxy parses HTTP and authorizes each
   * request, or the connection once sniffing says it is not HTTP (`authorizeConnection`).
   */
  | { kind: 'deliver'; pod: PodInfo; target: { address: string; port: number }; destination: WorkloadInfo; source: WorkloadInfo | undefined; authorization: 'connection' | 'per-request'; authz?: AuthzDecision }
  | InboundRefusal;

/**
 * Not delivered (the HTTP status for a tunnel stream; plaintext is reset): 404, not a pod
 * this node serves (the proxy is never an open relay); 403, plaintext to a port whose
 * PeerAuthentication is STRICT (`policy` names it), or an authorization policy denied the
 * connection (`authz`; `policy` is the one that denied, "none" when no ALLOW rule matched).
 */
export type InboundRefusal = { kind: 'refuse'; status: 404 | 403; reason: string; policy?: string; authz?: AuthzDecision };

export function decideInbound(config: ProxyConfig, facts: InboundFacts): InboundDecision {
  const { target, localPod } = facts;
  if (!localPod) return { kind: 'refuse', status: 404, reason: `${target.address} is not an enrolled pod of this node` };
  if (!facts.peerIdentity) {
    const mtls = config.peerAuthentication.modeFor(localPod, target.port);
    if (mtls.mode === 'STRICT') {
      return {
        kind: 'refuse',
        status: 403,
        policy: mtls.policy!,
        reason: `plaintext from ${facts.peer} to ${localPod.namespace}/${localPod.name} port ${target.port} refused: PeerAuthentication ${mtls.policy} makes it STRICT (mutual TLS only); call it from a pod of the mesh, or set that port PERMISSIVE with portLevelMtls`,
      };
    }
  }
  const deliver = { kind: 'deliver' as const, pod: localPod, target, destination: config.workload(localPod), source: inboundSource(config, facts) };
  if (needsL7(config.authorization, authzDestination(config, localPod), target.port)) return { ...deliver, authorization: 'per-request' };
  const authz = connectionDecision(config, localPod, facts);
  if (authz.verdict === 'deny') return authzRefusal(localPod, target, facts, authz);
  return { ...deliver, authorization: 'connection', authz };
}

/**
 * Authorization of a connection as bytes (L4: no method, path, host or headers), for a
 * port with HTTP rules once sniffing has said the connection is not HTTP: the evaluator
 * then fails closed for DENY rules with HTTP conditions, and ALLOW rules with them cannot
 * match (Istio's TCP semantics). A refusal, or undefined when allowed.
 */
export function authorizeConnection(config: ProxyConfig, pod: PodInfo, facts: InboundFacts & { sni?: string }): InboundRefusal | undefined {
  const authz = connectionDecision(config, pod, facts);
  return authz.verdict === 'deny' ? authzRefusal(pod, facts.target, facts, authz) : undefined;
}

function connectionDecision(config: ProxyConfig, pod: PodInfo, facts: InboundFacts & { sni?: string }): AuthzDecision {
  return authorize(config, {
    destination: pod,
    port: facts.target.port,
    destinationIp: facts.target.address,
    sourcePrincipal: facts.peerIdentity,
    sourceIp: facts.peer,
    ...(facts.sni !== undefined ? { sni: facts.sni } : {}),
  });
}

function authzRefusal(pod: PodInfo, target: { address: string; port: number }, facts: InboundFacts, authz: AuthzDecision): InboundRefusal {
  const from = facts.peerIdentity ?? `plaintext from ${facts.peer}`;
  return { kind: 'refuse', status: 403, policy: deniedBy(authz), authz, reason: `connection from ${from} to ${pod.namespace}/${pod.name} port ${target.port} refused: ${authz.reason}` };
}

/**
 * The source workload. Through the tunnel, who the certificate says (the SPIFFE ID is the
 * identity); the pod at the peer address (the source proxy connects from inside the source
 * pod) names the workload only when its service account is that identity. In plaintext
 * the pod at the peer address, without a principal: nothing proved one.
 */
export function inboundSource(config: ProxyConfig, facts: Pick<InboundFacts, 'peer' | 'peerIdentity'>): WorkloadInfo | undefined {
  const peerPod = config.snapshot.podByIP(facts.peer.replace(/^::ffff:/, ''));
  const peerWorkload = peerPod ? config.workload(peerPod) : undefined;
  if (!facts.peerIdentity) {
    if (!peerWorkload) return undefined;
    const { principal: _unproven, ...rest } = peerWorkload;
    return rest;
  }
  if (peerWorkload?.principal === facts.peerIdentity) return peerWorkload;
  const id = parseSpiffeId(facts.peerIdentity);
  return { namespace: id?.namespace ?? 'unknown', name: 'unknown', principal: facts.peerIdentity };
}
