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

/** What telemetry needs of the transport a relay went over; travels with a handed-over relay. */
export interface TransportFacts {
  /** The in-process hand-over to a pod of this node: this pass reports the destination too. */
  local: boolean;
  mtls: boolean;
}
