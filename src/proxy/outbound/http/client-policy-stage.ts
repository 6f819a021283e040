import { cachedServiceKey } from '../../../mesh/model';
import type { FaultDecision } from '../../../policy/client/fault-injection';
import { ProxyResponseError } from '../../http/proxy-response-error';
import { respondGrpcStatus } from '../../http/respond';
import { sleep } from '../../http/cancellation';
import { RESPONDED, type HttpStage, type StageOutcome } from '../../http/staged-pipeline';
import type { ProxyConfigStore } from '../../proxy-config';
import { sourceWorkload, type OutboundRequest } from './outbound-request';

/**
 * Client-side policy of the destination Service (TrafficPolicy), before anything is
 * sent: the local rate limit (429 RL), fault injection (delay DI, abort FI), then a slot
 * of the concurrency limit (503 UO), given back when the request ends.
 */
export class ClientPolicyStage implements HttpStage<OutboundRequest> {
  readonly name = 'client-policy';

  constructor(private readonly config: ProxyConfigStore) {}

  run(req: OutboundRequest): StageOutcome | Promise<StageOutcome> {
    if (!req.targetService) return;
    const policy = this.config.policies.forService(cachedServiceKey(req.targetService));
    req.policy = policy;
    if (policy.rateLimiter) {
      const source = sourceWorkload(req);
      if (!policy.rateLimiter.tryTake(source ? `${source.namespace}/${source.name}` : undefined)) throw new ProxyResponseError(429, 'RL', 'local rate limit');
    }
    const fault = policy.decideFault();
    if (fault?.delayMs) return this.delayed(req, fault);
    if (fault?.abortStatus || fault?.abortGrpcStatus) return this.abort(req, fault);
    return this.acquire(req);
  }

  finish(req: OutboundRequest): void {
    req.release?.();
  }

  private async delayed(req: OutboundRequest, fault: FaultDecision): Promise<StageOutcome> {
    req.state.flags.push('DI');
    await sleep(fault.delayMs!, req.cancel);
    if (fault.abortStatus || fault.abortGrpcStatus) return this.abort(req, fault);
    return this.acquire(req);
  }

  private abort(req: OutboundRequest, fault: { abortStatus?: number; abortGrpcStatus?: number }): StageOutcome {
    req.state.flags.push('FI');
    if (fault.abortGrpcStatus && req.grpc) {
      respondGrpcStatus(req.ex, fault.abortGrpcStatus, 'fault injected');
      req.state.responseCode = 200;
      req.state.grpcStatus = fault.abortGrpcStatus;
      return RESPONDED;
    }
    throw new ProxyResponseError(fault.abortStatus ?? 503, 'FI', 'fault injected');
  }

  private acquire(req: OutboundRequest): StageOutcome | Promise<StageOutcome> {
    const limiter = req.policy!.limiter;
    if (!limiter) return;
    return limiter.acquire(req.cancel.signal).then(
      (release) => { req.release = release; },
      () => { throw new ProxyResponseError(503, 'UO', 'upstream overflow: the connection pool limits of the destination are reached'); },
    );
  }
}
