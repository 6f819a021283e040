import type { ConnectionInfo } from '../../connection-info';
import type { DownstreamExchange } from '../../http/exchange';
import { StagedPipeline, type HttpStage } from '../../http/staged-pipeline';
import type { ProxyConfig } from '../../proxy-config';
import { ClientPolicyStage } from './client-policy-stage';
import type { OutboundRequest, OutboundStageDeps } from './outbound-request';
import { RouteStage } from './route-stage';
import { newTelemetryContext, TelemetryStage } from '../../http/telemetry-stage';
import { UpstreamStage } from './upstream-stage';

/**
 * The outbound HTTP pipeline, in order: telemetry (ids in, report out), route, client
 * policy, upstream. Authorization (server-side policy, next) slots in before upstream.
 */
export function outboundStages(deps: OutboundStageDeps): HttpStage<OutboundRequest>[] {
  return [new TelemetryStage<OutboundRequest>(deps.metrics, deps.accessLog), new RouteStage(deps.random), new ClientPolicyStage(deps.config), new UpstreamStage(deps)];
}

export function newOutboundRequest(ex: DownstreamExchange, conn: ConnectionInfo, config: ProxyConfig): OutboundRequest {
  return {
    ...newTelemetryContext(ex, conn, config),
    targetService: undefined,
    targetPort: conn.original.port,
    match: undefined,
    policy: undefined,
    release: undefined,
  };
}

export function createOutboundPipeline(deps: OutboundStageDeps): StagedPipeline<OutboundRequest> {
  return new StagedPipeline(outboundStages(deps), deps.config, newOutboundRequest, deps.logger);
}
