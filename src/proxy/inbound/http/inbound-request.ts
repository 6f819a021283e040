import type { ConnectionInfo } from '../../connection-info';
import type { DownstreamExchange } from '../../http/exchange';
import type { HeaderRecord } from '../../http/headers';
import { newTelemetryContext, type TelemetryContext } from '../../http/telemetry-stage';
import type { LocalPods } from '../../local-pods';
import type { ProxyMetrics } from '../../metrics';
import type { ProxyConfig, ProxyConfigStore } from '../../proxy-config';
import type { AccessLog } from '../../../telemetry/access-log';
import type { IstioMetrics } from '../../../telemetry/istio-metrics';
import type { Logger } from '../../../log';
import type { H2Sessions } from '../../upstream/h2-sessions';
import type { Http1Pools } from '../../upstream/http1-pools';

/** One request that arrived for a pod of this node (15006 or a tunnel stream), parsed because its policies need L7. */
export interface InboundRequest extends TelemetryContext {
  readonly headers: HeaderRecord;
  readonly authority: string;
}

/** What the inbound stages use. */
export interface InboundStageDeps {
  config: ProxyConfigStore;
  pods: LocalPods;
  pools: Http1Pools;
  sessions: H2Sessions;
  istio: IstioMetrics;
  metrics: ProxyMetrics;
  accessLog: AccessLog | undefined;
  logger: Logger;
}

export function newInboundRequest(ex: DownstreamExchange, conn: ConnectionInfo, config: ProxyConfig): InboundRequest {
  return newTelemetryContext(ex, conn, config);
}
