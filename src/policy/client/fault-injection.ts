import type { FaultInjectionConfig } from './traffic-policy';

/**
 * Fault injection (Istio's HTTPFaultInjection): delay and abort are decided independently,
 * each with its own draw; a request may get both (delayed, then aborted), as in Istio.
 * The proxy applies the delay before it forwards and answers the abort itself (the
 * request never reaches the endpoint); Envoy's response flags are DI and FI.
 */

export interface FaultDecision {
  delayMs?: number;
  abortStatus?: number;
  abortGrpcStatus?: number;
}

export const DELAY_RESPONSE_FLAG = 'DI';
export const ABORT_RESPONSE_FLAG = 'FI';

/** True with probability percentage/100 (0 never, 100 always). */
function chance(percentage: number, random: () => number): boolean {
  return random() * 100 < percentage;
}

export function decideFault(cfg: FaultInjectionConfig | undefined, random: () => number): FaultDecision {
  const out: FaultDecision = {};
  if (!cfg) return out;
  if (cfg.delay && cfg.delay.percentage > 0 && chance(cfg.delay.percentage, random)) out.delayMs = cfg.delay.fixedDelayMs;
  if (cfg.abort && cfg.abort.percentage > 0 && chance(cfg.abort.percentage, random)) {
    if (cfg.abort.grpcStatus !== undefined) out.abortGrpcStatus = cfg.abort.grpcStatus;
    else if (cfg.abort.httpStatus !== undefined) out.abortStatus = cfg.abort.httpStatus;
  }
  return out;
}
