import type { PodInfo, ServiceInfo } from '../mesh/model';
import type { WorkloadInfo } from '../mesh/workload-identity';

/** A socket address as the proxy sees it: the family travels with it (no re-parsing). */
export interface ProxyAddress {
  family: 4 | 6;
  address: string;
  port: number;
}

/** What the proxy knows about the connection a request arrived on (both directions). */
export interface ConnectionInfo {
  direction: 'outbound' | 'inbound';
  /** The enrolled pod whose listener accepted the connection. */
  pod: PodInfo | undefined;
  podKey: string;
  original: ProxyAddress;
  sourceAddress: string;
  /** The downstream protocol. */
  protocol: 'http1' | 'h2';
  /**
   * Inbound only: who is at the other end. `principal` is the SPIFFE ID its certificate
   * proved (a tunnel stream); undefined for plaintext (15006), where `workload` is at
   * most the pod at the peer address, without a principal.
   */
  peer?: { principal: string | undefined; workload: WorkloadInfo | undefined };
  /**
   * Inbound only: the Service the request is for, as the destination's telemetry names it
   * (destination_service): the one the source addressed (a tunnel stream's original
   * destination), else the one serving the pod on this port (inbound/destination-service.ts).
   */
  service?: ServiceInfo;
}
