import type { CaptureSettings } from '../capture/settings';
import type { CredentialLookup } from '../identity/workload-certificates';
import type { Logger } from '../log';
import type { AccessLog } from '../telemetry/access-log';
import type { IstioMetrics } from '../telemetry/istio-metrics';
import type { ConnectionLog } from './connection-log';
import type { HandableRelays } from './handover/handable-relays';
import type { LocalPods } from './local-pods';
import type { ProxyMetrics } from './metrics';
import type { ProxyConfigStore } from './proxy-config';

/**
 * What outbound and inbound both read: the configuration, the pods of this node, the
 * capture settings and the telemetry sinks. One object, built by the node proxy, so
 * neither direction needs the other (or the node proxy) to do its work.
 */
export interface ProxyInputs {
  readonly config: ProxyConfigStore;
  readonly pods: LocalPods;
  readonly settings: CaptureSettings;
  /** The node this proxy serves; undefined in sidecar mode (every other pod is then remote). */
  readonly nodeName: string | undefined;
  /** Whether enrolled pods of other nodes are reached through their node's tunnel (15008). */
  readonly tunnelEnabled: boolean;
  /**
   * The workloads' certificates (mTLS on the tunnel). Undefined without a CA: then no
   * tunnel is used, since nothing could authenticate it.
   */
  readonly identity: CredentialLookup | undefined;
  readonly istio: IstioMetrics;
  readonly accessLog: AccessLog | undefined;
  readonly metrics: ProxyMetrics;
  readonly log: ConnectionLog;
  readonly logger: Logger;
  /** TCP relays the next agent could take over (agent hand-over); undefined: none are offered. */
  readonly handable?: HandableRelays;
}
