import { StagedPipeline } from '../../http/staged-pipeline';
import { TelemetryStage } from '../../http/telemetry-stage';
import { AuthorizationStage } from './authorization-stage';
import { DeliverStage } from './deliver-stage';
import { newInboundRequest, type InboundRequest, type InboundStageDeps } from './inbound-request';

/**
 * The inbound HTTP pipeline, for pods whose authorization policies need L7 on the port:
 * telemetry (reporter="destination"), authorization, delivery to the app. No routing or
 * client policy: those are the source side's (as in Istio, where the destination's proxy
 * does not route).
 */
export function createInboundPipeline(deps: InboundStageDeps): StagedPipeline<InboundRequest> {
  return new StagedPipeline<InboundRequest>([new TelemetryStage<InboundRequest>(deps.istio, deps.accessLog), new AuthorizationStage(deps), new DeliverStage(deps)], deps.config, newInboundRequest, deps.logger);
}
