import type { ServiceInfo } from '../../mesh/model';
import type { WorkloadInfo } from '../../mesh/workload-identity';

/**
 * One attempt handed over in-process to a pod of this node. The pass plays the
 * destination's proxy too, so it reports the attempt as the destination would
 * (src/telemetry/reporter.ts): once per attempt, as a destination sees each retry.
 */
export interface HandOverAttempt {
  destination: WorkloadInfo;
  /** The endpoint, "ip:port". */
  upstreamHost: string;
  /** Whether the hand-over counts as mutual TLS (the transport's `mtls`). */
  mtls: boolean;
  /** performance.now() when the attempt started. */
  started: number;
  /** Set when the attempt ended before the request did (it was retried): its answer. */
  ended?: { responseCode: number; flags: string; durationMs: number };
}

/** Everything decided about one request, for telemetry. */
export interface RequestState {
  started: number;
  startedAt: number;
  flags: string[];
  attempts: number;
  upstreamHost?: string;
  route?: string;
  destService?: ServiceInfo;
  destWorkload?: WorkloadInfo;
  /** How the last attempt reached its endpoint: mutual TLS (true) or plaintext (false); undefined when none was sent. */
  upstreamMtls?: boolean;
  /** The attempts handed over in-process, in order (outbound, same node). */
  handOvers?: HandOverAttempt[];
  responseCode: number;
  grpcStatus?: number;
  responseBytes: number;
  /** Why the proxy answered itself, as Envoy's response code details (an authorization denial names its policy). */
  details?: string;
  /** The AUDIT authorization policies that matched ("ns/name#rule", joined with ","). */
  audited?: string;
}

export function newRequestState(): RequestState {
  return { started: performance.now(), startedAt: Date.now(), flags: [], attempts: 0, responseCode: 0, responseBytes: 0 };
}
