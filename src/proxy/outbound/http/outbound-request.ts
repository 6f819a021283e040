import type { ServiceInfo } from '../../../mesh/model';
import type { ServicePolicy } from '../../../policy/client/policy-set';
import type { RouteMatch } from '../../../routing';
import type { AccessLog } from '../../../telemetry/access-log';
import type { WorkloadInfo } from '../../../mesh/workload-identity';
import type { IstioMetrics } from '../../../telemetry/istio-metrics';
import type { Logger } from '../../../log';
import type { ConnectionInfo } from '../../connection-info';
import type { ProxyConfig, ProxyConfigStore } from '../../proxy-config';
import type { H2Sessions } from '../../upstream/h2-sessions';
import type { Http1Pools } from '../../upstream/http1-pools';
import type { UpstreamTransport } from '../../upstream/transport';
import type { HeaderRecord } from '../../http/headers';
import type { StageContext } from '../../http/staged-pipeline';
import type { DenialSinks } from '../../authz/report-denial';

/** One outbound request as the stages pass it along: what each stage decided. */
export interface OutboundRequest extends StageContext {
  readonly headers: HeaderRecord;
  readonly authority: string;
  requestId: string;
  traceparent: string;
  /** Set by the route stage: the Service (and port) the request goes to; none for a pod IP. */
  targetService: ServiceInfo | undefined;
  targetPort: number;
  match: RouteMatch | undefined;
  /** Set by the client-policy stage. */
  policy: ServicePolicy | undefined;
  release: (() => void) | undefined;
}

/** What the outbound stages use, given by the outbound handler. */
export interface OutboundStageDeps {
  config: ProxyConfigStore;
  pools: Http1Pools;
  sessions: H2Sessions;
  metrics: IstioMetrics;
  accessLog: AccessLog | undefined;
  logger: Logger;
  /** The transport from the connection's pod to an endpoint (direct, local hand-over, tunnel). */
  transportFor(conn: ConnectionInfo, endpoint: { address: string; port: number }): UpstreamTransport;
  random: () => number;
  /** Where same-node authorization denials are counted. */
  authz: DenialSinks;
}

/** The workload at a "ip:port" / "[ip6]:port" source address, when it is a pod of the mesh. */
export function peerWorkload(config: ProxyConfig, address: string): WorkloadInfo | undefined {
  const ip = address.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  const pod = config.snapshot.podByIP(ip);
  return pod ? config.workload(pod) : undefined;
}

/** The workload that sent the request: the source pod outbound, the peer inbound. */
export function sourceWorkload(req: { conn: ConnectionInfo; config: ProxyConfig }): WorkloadInfo | undefined {
  const { conn, config } = req;
  return conn.direction === 'outbound' && conn.pod ? config.workload(conn.pod) : peerWorkload(config, conn.sourceAddress);
}
