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
}

export function newRequestState(): RequestState {
  return { started: performance.now(), startedAt: Date.now(), flags: [], attempts: 0, responseCode: 0, responseBytes: 0 };
}
