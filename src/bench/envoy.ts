/**
 * The Envoy sidecar of the bench's `envoy-sidecar` mode: a static bootstrap shaped like
 * the one Istio's control plane gives a sidecar, and the process started inside a
 * simulated pod the way an injected pod runs it.
 *
 * In the pod (what istio-init and istio-proxy do):
 *   1. `nodemesh sidecar-init --exclude-uid 1337`: the in-pod nat rules, outbound TCP ->
 *      15001, inbound -> 15006, connections of uid 1337 (Envoy's) left alone;
 *   2. Envoy as uid/gid 1337 with no capabilities (setpriv), --concurrency 2 (Istio's
 *      default for sidecars), admin on a unix socket (no port, nothing to capture).
 *
 * The bootstrap (Istio's listener and cluster names, so Envoy's stats read alike):
 *   virtualOutbound 0.0.0.0:15001  original_dst listener filter, use_original_dst: the
 *                                  connection is handed to the listener of its original
 *                                  destination port; anything else -> PassthroughCluster
 *                                  (tcp_proxy).
 *   0.0.0.0_PORT (bind_to_port false) for each outbound HTTP port: HTTP connection manager
 *                                  (stat_prefix outbound_0.0.0.0_PORT) -> fault, cors,
 *                                  router -> PassthroughCluster.
 *   virtualInbound 0.0.0.0:15006   original_dst listener filter; a filter chain per app
 *                                  port: HTTP connection manager (inbound_0.0.0.0_PORT) ->
 *                                  router -> cluster inbound|PORT|| = 127.0.0.1:PORT (the
 *                                  local app); other ports -> InboundPassthroughClusterIpv4.
 *   PassthroughCluster             type ORIGINAL_DST, lb CLUSTER_PROVIDED.
 * Circuit breakers are raised to Istio's (effectively unlimited) values; stats use Envoy's
 * default tag extraction, as Istio's bootstrap does.
 */
import { type ChildProcess } from 'node:child_process';
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { adminGet } from '../admin/admin-client';
import { execInPod, waitExit } from '../sim/exec';
import { CLI, waitFor } from '../sim/harness';
import type { SimState } from '../sim/state';

export const ENVOY_UID = 1337;
export const ENVOY_OUTBOUND_PORT = 15001;
export const ENVOY_INBOUND_PORT = 15006;

export interface EnvoyBootstrapOptions {
  /** namespace/name of the pod. */
  pod: string;
  podIP: string;
  /** Unix socket of the admin API. */
  adminSocket: string;
  /** Ports of the app in this pod (inbound HTTP filter chains). */
  inboundHttpPorts: number[];
  /** Destination ports of outbound HTTP (Service ports the app calls). */
  outboundHttpPorts: number[];
  /**
   * Istio's auto mTLS between sidecars: the workload's certificate and key and the trust
   * bundle (PEM files). Outbound connections present the certificate and verify the peer's
   * against the bundle; the inbound listener requires a client certificate on TLS
   * connections (and still takes plaintext, as PERMISSIVE does).
   */
  mtls?: { certFile: string; keyFile: string; caFile: string };
}

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const TCP_PROXY = 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';
const ORIGINAL_DST_FILTER = 'type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst';
const ROUTER = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';
const FAULT = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';
const CORS = 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors';
const TLS_INSPECTOR = 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector';
const UPSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
const DOWNSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';

/** TLS 1.3 with the workload's certificate, peers checked against the bundle (as nodemesh's tunnel). */
function commonTls(m: NonNullable<EnvoyBootstrapOptions['mtls']>): object {
  return {
    tls_params: { tls_minimum_protocol_version: 'TLSv1_3', tls_maximum_protocol_version: 'TLSv1_3' },
    tls_certificates: [{ certificate_chain: { filename: m.certFile }, private_key: { filename: m.keyFile } }],
    validation_context: { trusted_ca: { filename: m.caFile } },
  };
}

const UNLIMITED_CIRCUIT_BREAKERS = {
  thresholds: [{ max_connections: 4294967295, max_pending_requests: 4294967295, max_requests: 4294967295, max_retries: 4294967295, track_remaining: true }],
};

function httpFilters(): object[] {
  return [
    { name: 'envoy.filters.http.fault', typed_config: { '@type': FAULT } },
    { name: 'envoy.filters.http.cors', typed_config: { '@type': CORS } },
    { name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } },
  ];
}

function hcm(statPrefix: string, routeName: string, cluster: string): object {
  return {
    name: 'envoy.filters.network.http_connection_manager',
    typed_config: {
      '@type': HCM,
      stat_prefix: statPrefix,
      codec_type: 'AUTO',
      use_remote_address: false,
      normalize_path: true,
      path_with_escaped_slashes_action: 'KEEP_UNCHANGED',
      stream_idle_timeout: '0s',
      upgrade_configs: [{ upgrade_type: 'websocket' }],
      route_config: {
        name: routeName,
        validate_clusters: false,
        virtual_hosts: [{ name: 'allow_any', domains: ['*'], routes: [{ name: 'allow_any', match: { prefix: '/' }, route: { cluster, timeout: '0s' } }] }],
      },
      http_filters: httpFilters(),
    },
  };
}

/** The static bootstrap, as a JSON-compatible object (Envoy reads it as YAML or JSON). */
export function envoyBootstrap(o: EnvoyBootstrapOptions): Record<string, unknown> {
  const [ns, name] = o.pod.split('/');
  const passthroughTcp = { name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': TCP_PROXY, stat_prefix: 'PassthroughCluster', cluster: 'PassthroughCluster' } };
  const m = o.mtls;
  const inboundHttp = (port: number, tls: boolean) => ({
    name: `0.0.0.0_${port}${tls ? '_mtls' : ''}`,
    filter_chain_match: { destination_port: port, ...(m ? { transport_protocol: tls ? 'tls' : 'raw_buffer' } : {}) },
    filters: [hcm(`inbound_0.0.0.0_${port}`, `inbound|${port}||`, `inbound|${port}||`)],
    ...(tls && m ? { transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: { '@type': DOWNSTREAM_TLS, require_client_certificate: true, common_tls_context: commonTls(m) } } } : {}),
  });
  return {
    node: { id: `sidecar~${o.podIP}~${name}.${ns}~${ns}.svc.cluster.local`, cluster: `${name}.${ns}` },
    admin: { address: { pipe: { path: o.adminSocket, mode: 0o600 } } },
    stats_config: { use_all_default_tags: true },
    static_resources: {
      listeners: [
        {
          name: 'virtualOutbound',
          address: { socket_address: { address: '0.0.0.0', port_value: ENVOY_OUTBOUND_PORT } },
          use_original_dst: true,
          listener_filters: [{ name: 'envoy.filters.listener.original_dst', typed_config: { '@type': ORIGINAL_DST_FILTER } }],
          filter_chains: [{ name: 'virtualOutbound-catchall-tcp', filters: [passthroughTcp] }],
          traffic_direction: 'OUTBOUND',
        },
        ...o.outboundHttpPorts.map((port) => ({
          name: `0.0.0.0_${port}`,
          address: { socket_address: { address: '0.0.0.0', port_value: port } },
          bind_to_port: false,
          filter_chains: [{ filters: [hcm(`outbound_0.0.0.0_${port}`, String(port), 'PassthroughCluster')] }],
          traffic_direction: 'OUTBOUND',
        })),
        {
          name: 'virtualInbound',
          address: { socket_address: { address: '0.0.0.0', port_value: ENVOY_INBOUND_PORT } },
          listener_filters: [
            { name: 'envoy.filters.listener.original_dst', typed_config: { '@type': ORIGINAL_DST_FILTER } },
            ...(m ? [{ name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': TLS_INSPECTOR } }] : []),
          ],
          filter_chains: [
            ...o.inboundHttpPorts.flatMap((port) => (m ? [inboundHttp(port, true), inboundHttp(port, false)] : [inboundHttp(port, false)])),
            { name: 'virtualInbound-catchall-tcp', filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': TCP_PROXY, stat_prefix: 'InboundPassthroughClusterIpv4', cluster: 'InboundPassthroughClusterIpv4' } }] },
          ],
          traffic_direction: 'INBOUND',
        },
      ],
      clusters: [
        {
          name: 'PassthroughCluster', type: 'ORIGINAL_DST', lb_policy: 'CLUSTER_PROVIDED', connect_timeout: '10s', circuit_breakers: UNLIMITED_CIRCUIT_BREAKERS,
          ...(m ? { transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: { '@type': UPSTREAM_TLS, common_tls_context: commonTls(m) } } } : {}),
        },
        {
          name: 'InboundPassthroughClusterIpv4',
          type: 'ORIGINAL_DST',
          lb_policy: 'CLUSTER_PROVIDED',
          connect_timeout: '10s',
          upstream_bind_config: { source_address: { address: '127.0.0.6', port_value: 0 } },
          circuit_breakers: UNLIMITED_CIRCUIT_BREAKERS,
        },
        ...o.inboundHttpPorts.map((port) => ({
          name: `inbound|${port}||`,
          type: 'STATIC',
          lb_policy: 'ROUND_ROBIN',
          connect_timeout: '10s',
          circuit_breakers: UNLIMITED_CIRCUIT_BREAKERS,
          load_assignment: {
            cluster_name: `inbound|${port}||`,
            endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }],
          },
        })),
      ],
    },
  };
}

/** The sum of the counters whose names end with `suffix` in Envoy's /stats text. */
export function envoyCounter(statsText: string, pattern: RegExp): number {
  let total = 0;
  for (const line of statsText.split('\n')) {
    const m = /^(\S+): (\d+)$/.exec(line.trim());
    if (m && pattern.test(m[1]!)) total += Number(m[2]);
  }
  return total;
}

/** A running Envoy sidecar in a simulated pod. */
export class EnvoySidecar {
  log = '';
  constructor(readonly pod: string, readonly child: ChildProcess, readonly adminSocket: string) {
    child.stdout?.setEncoding('utf8');
    child.stderr?.setEncoding('utf8');
    child.stdout?.on('data', (d: string) => { this.log = (this.log + d).slice(-20_000); });
    child.stderr?.on('data', (d: string) => { this.log = (this.log + d).slice(-20_000); });
  }

  get pid(): number {
    return this.child.pid!;
  }

  stats(filter: string): Promise<string> {
    return adminGet<string>(this.adminSocket, `/stats?filter=${encodeURIComponent(filter)}`);
  }

  /** TLS handshakes the outbound side completed (its upstream connections' sessions). */
  async tlsHandshakes(): Promise<number> {
    return envoyCounter(await this.stats('^cluster\\.PassthroughCluster\\.ssl\\.handshake$'), /^cluster\.PassthroughCluster\.ssl\.handshake$/);
  }

  /** downstream_rq_total of the outbound or inbound HTTP connection managers. */
  async requests(direction: 'outbound' | 'inbound'): Promise<number> {
    return envoyCounter(await this.stats(`^http\\.${direction}_.*\\.downstream_rq_total$`), new RegExp(`^http\\.${direction}_.*\\.downstream_rq_total$`));
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill('SIGTERM');
    const done = await Promise.race([waitExit(this.child).then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5000))]);
    if (!done) this.child.kill('SIGKILL');
  }
}

/**
 * Installs the redirect in the pod (sidecar-init, Envoy's uid excluded), writes the
 * bootstrap under `dir` and starts Envoy as uid 1337; resolves once its admin says LIVE.
 */
export async function startEnvoySidecar(state: SimState, options: EnvoyBootstrapOptions & { envoy: string; dir: string }): Promise<EnvoySidecar> {
  const pod = state.pods.find((p) => p.key === options.pod);
  if (!pod) throw new Error(`no pod ${options.pod} in the simulation`);
  const init = execInPod(state, options.pod, [process.execPath, CLI, 'sidecar-init', '--pod-ip', pod.ips.join(','), '--exclude-uid', String(ENVOY_UID), '--iptables-backend', state.iptablesBackend], { stdio: ['ignore', 'pipe', 'pipe'] });
  let initOut = '';
  init.stdout!.on('data', (d: Buffer) => { initOut += d.toString(); });
  init.stderr!.on('data', (d: Buffer) => { initOut += d.toString(); });
  const code = await waitExit(init);
  if (code !== 0) throw new Error(`sidecar-init for Envoy in ${options.pod} failed (${code}): ${initOut}`);

  mkdirSync(options.dir, { recursive: true, mode: 0o755 });
  chownSync(options.dir, ENVOY_UID, ENVOY_UID);
  const file = join(options.dir, 'bootstrap.json');
  writeFileSync(file, JSON.stringify(envoyBootstrap(options), null, 2), { mode: 0o644 });
  const child = execInPod(state, options.pod, [
    'setpriv', `--reuid=${ENVOY_UID}`, `--regid=${ENVOY_UID}`, '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--',
    options.envoy, '-c', file, '--concurrency', '2', '--disable-hot-restart', '--log-level', 'warn',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  const sidecar = new EnvoySidecar(options.pod, child, options.adminSocket);
  const exited = new Promise<never>((_, reject) => {
    child.once('exit', (c, s) => reject(new Error(`envoy in ${options.pod} exited with ${c ?? s}: ${sidecar.log.slice(-2000)}`)));
  });
  exited.catch(() => undefined);
  await Promise.race([
    exited,
    waitFor(`envoy in ${options.pod} to be live`, async () => (await adminGet<string>(options.adminSocket, '/ready', 1000)).trim() === 'LIVE', 30_000),
  ]);
  return sidecar;
}
