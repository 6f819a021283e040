import type { PodInfo } from '../../mesh/model';
import type { AuthzDecision } from '../../policy/server/authorization/evaluate';
import { authorize, authzHttp, ipOf } from '../authz-request';
import type { DownstreamExchange } from '../http/exchange';
import type { HeaderRecord } from '../http/headers';
import type { RequestState } from '../http/request-state';
import type { ProxyConfig } from '../proxy-config';
import { auditedPolicies, rbacDetails } from './denial';
import { reportDenial, type DenialSinks } from './report-denial';
import { respondDenied } from './respond-denied';

/** One parsed request on its way into a pod of this node, as its destination sees it. */
export interface RequestToPod {
  destination: PodInfo;
  /** The pod address and port it is for. */
  target: { address: string; port: number };
  /** Proved by mutual TLS (the tunnel) or known to this agent (the same-node hand-over); undefined for plaintext. */
  sourcePrincipal: string | undefined;
  /** "ip:port" of the source. */
  sourceAddress: string;
  /** What the destination will be sent (after the source side's route filters and rewrites). */
  method: string;
  path: string;
  authority: string;
  headers: HeaderRecord;
}

/**
 * Authorization of one HTTP request (L7), the same for every way a request reaches a pod
 * of this node (15006, the tunnel, the same-node hand-over): evaluated on the
 * configuration the request started with; a denial is answered here (403 "RBAC: access
 * denied", gRPC: status 7), counted and logged with the policy, and the app never sees
 * the request. True when the request may go on.
 */
export function authorizeRequest(sinks: DenialSinks, config: ProxyConfig, r: RequestToPod, ex: DownstreamExchange, grpc: boolean, state: RequestState): boolean {
  const decision = decideRequest(config, r);
  const audited = auditedPolicies(decision);
  if (audited) state.audited = audited;
  if (decision.verdict === 'allow') return true;
  state.details = rbacDetails(decision);
  reportDenial(sinks, r.destination, decision, 'l7', { source: r.sourceAddress, principal: r.sourcePrincipal, method: r.method, path: r.path });
  respondDenied(ex, grpc, state);
  return false;
}

export function decideRequest(config: ProxyConfig, r: RequestToPod): AuthzDecision {
  return authorize(config, {
    destination: r.destination,
    port: r.target.port,
    destinationIp: r.target.address,
    sourcePrincipal: r.sourcePrincipal,
    sourceIp: ipOf(r.sourceAddress),
    http: authzHttp(r),
  });
}
