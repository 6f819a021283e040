import { Counter, Gauge, type Registry } from 'prom-client';

/** The proxy's own health and traffic counters (nodemesh_*), next to the code they count. */
export class ProxyMetrics {
  readonly connections: Counter<'direction' | 'namespace' | 'pod' | 'result'>;
  readonly bytes: Counter<'direction' | 'namespace' | 'pod' | 'flow'>;
  readonly active: Gauge<'direction'>;
  readonly listeners: Gauge<'kind'>;
  readonly tlsFailures: Counter<'side' | 'reason'>;
  readonly tunnelSessions: Counter<'side'>;
  readonly plaintextRefused: Counter<'namespace' | 'pod' | 'policy'>;
  readonly authzDenied: Counter<'namespace' | 'pod' | 'policy' | 'layer'>;

  constructor(registry: Registry) {
    this.connections = new Counter({
      name: 'nodemesh_proxy_connections_total',
      help: 'Connections the node proxy handled, by direction (outbound, inbound, probe), pod and result (ok, error).',
      labelNames: ['direction', 'namespace', 'pod', 'result'],
      registers: [registry],
    });
    this.bytes = new Counter({
      name: 'nodemesh_proxy_bytes_total',
      help: 'Bytes the node proxy relayed; flow=sent is from the pod, flow=received is to the pod.',
      labelNames: ['direction', 'namespace', 'pod', 'flow'],
      registers: [registry],
    });
    this.active = new Gauge({
      name: 'nodemesh_proxy_active_connections',
      help: 'Connections open through the node proxy now.',
      labelNames: ['direction'],
      registers: [registry],
    });
    this.listeners = new Gauge({
      name: 'nodemesh_proxy_listeners',
      help: 'Listening sockets the proxy holds inside pod namespaces.',
      labelNames: ['kind'],
      registers: [registry],
    });
    this.tlsFailures = new Counter({
      name: 'nodemesh_tls_handshake_failures_total',
      help: 'Tunnel mTLS that failed: side=server (a connection on 15008 without a valid client certificate), side=client (the peer\'s identity refused, or the source had no certificate: reason=no_certificate).',
      labelNames: ['side', 'reason'],
      registers: [registry],
    });
    this.tunnelSessions = new Counter({
      name: 'nodemesh_tunnel_sessions_total',
      help: 'Tunnel sessions established (one mTLS handshake each), side=server accepted on 15008.',
      labelNames: ['side'],
      registers: [registry],
    });
    this.plaintextRefused = new Counter({
      name: 'nodemesh_mtls_plaintext_refused_total',
      help: 'Plaintext connections captured inbound (15006) and refused because a PeerAuthentication makes the port STRICT, by destination pod and the policy.',
      labelNames: ['namespace', 'pod', 'policy'],
      registers: [registry],
    });
    this.authzDenied = new Counter({
      name: 'nodemesh_authz_denied_total',
      help: 'Connections (layer="l4") and HTTP requests (layer="l7") an authorization policy denied, by destination pod and the policy that denied ("ns/name"; "none" when ALLOW policies applied and none of their rules matched).',
      labelNames: ['namespace', 'pod', 'policy', 'layer'],
      registers: [registry],
    });
  }
}
