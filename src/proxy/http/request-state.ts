import type { ServiceInfo } from '../../mesh/model';
import type { WorkloadInfo } from '../../mesh/workload-identity';

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
