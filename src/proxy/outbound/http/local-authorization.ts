import type { PodInfo } from '../../../mesh/model';
import { authorizeRequest, decideRequest, type RequestToPod } from '../../authz/authorize-request';
import { reportDenial, type DenialSinks } from '../../authz/report-denial';
import type { UpstreamTransport } from '../../upstream/transport';
import type { OutboundRequest } from './outbound-request';
import type { UpstreamRequestHead } from './upstream-request';

/**
 * The same-node hand-over skips the destination pod's inbound side, so its authorization
 * runs here, per request, as that side would run it: the destination is the chosen
 * endpoint's pod, the source the sending pod's workload principal (the agent knows both
 * ends, as ztunnel's local path does), the request as it will be sent (after the route's
 * filters and rewrite). Other transports are authorized where they arrive.
 */
function requestToPod(req: OutboundRequest, request: UpstreamRequestHead, destination: PodInfo, target: { address: string; port: number }): RequestToPod {
  const { conn, config } = req;
  return {
    destination,
    target,
    sourcePrincipal: conn.pod ? config.workload(conn.pod).principal : undefined,
    sourceAddress: conn.sourceAddress,
    method: request.method,
    path: request.path,
    authority: request.authority,
    headers: request.headers,
  };
}

/** True when the attempt may be sent; a denied one has been answered (403 / gRPC 7). */
export function authorizeHandOver(sinks: DenialSinks, req: OutboundRequest, request: UpstreamRequestHead, transport: UpstreamTransport, destination: PodInfo | undefined, target: { address: string; port: number }): boolean {
  if (transport.kind !== 'local' || !destination) return true;
  return authorizeRequest(sinks, req.config, requestToPod(req, request, destination, target), req.ex, req.grpc, req.state);
}

/** For a mirrored copy (nobody reads its answer): false, counted and logged, when the destination would deny it. */
export function mirrorAllowed(sinks: DenialSinks, req: OutboundRequest, request: UpstreamRequestHead, transport: UpstreamTransport, destination: PodInfo | undefined, target: { address: string; port: number }): boolean {
  if (transport.kind !== 'local' || !destination) return true;
  const r = requestToPod(req, request, destination, target);
  const decision = decideRequest(req.config, r);
  if (decision.verdict === 'allow') return true;
  reportDenial(sinks, destination, decision, 'l7', { source: r.sourceAddress, principal: r.sourcePrincipal, method: r.method, path: r.path, mirror: true });
  return false;
}
