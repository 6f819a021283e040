import type { ServiceInfo } from '../mesh/model';
import type { WorkloadInfo } from '../mesh/workload-identity';

/** Where a connection relayed as bytes goes, and who is at either end (telemetry). */
export interface TcpTarget {
  address: string;
  port: number;
  /** How the target was found, for the connection log ("service ns/name:80", "pod ...", "passthrough", "local app"). */
  resolution: string;
  service?: ServiceInfo;
  source?: WorkloadInfo;
  destination?: WorkloadInfo;
}
