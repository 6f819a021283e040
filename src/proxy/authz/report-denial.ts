import { logger } from '../../log';
import type { AuthzDecision } from '../../policy/server/authorization/evaluate';
import type { ProxyMetrics } from '../metrics';
import { deniedBy } from './denial';

export interface DenialSinks {
  metrics: ProxyMetrics;
}

const log = logger('authz');

/**
 * Every denial, whatever refused it (a connection, L4; a request, L7), is counted by the
 * policy that denied and logged with the evaluator's reason, which names the policy and
 * rule (or the ALLOW policies none of whose rules matched).
 */
export function reportDenial(sinks: DenialSinks, pod: { namespace: string; name: string }, decision: AuthzDecision, layer: 'l4' | 'l7', facts: Record<string, unknown>): void {
  const policy = deniedBy(decision);
  sinks.metrics.authzDenied.inc({ namespace: pod.namespace, pod: pod.name, policy, layer });
  log.info({ pod: `${pod.namespace}/${pod.name}`, layer, policy, ...facts }, decision.reason);
}
