/**
 * Istio's metric vocabulary: the label names of its standard metrics in Istio's order, the
 * label values nodemesh sets, and Istio's default histogram buckets.
 *
 * Unknown values are "unknown", as in Istio. `grpc_response_status` is the gRPC status for
 * `request_protocol="grpc"` ("unknown" when the response carried none) and "" for plain HTTP
 * (absent in Prometheus terms, as Istio's proxies emit it). `response_flags` are Envoy's, "-"
 * for none.
 *
 * Security, as Istio's stats filter sets it: a leg says whether its connection across the
 * mesh was mutual TLS (`mtls`: the tunnel, or the same-node hand-over between two
 * workloads whose certificates this proxy holds; false: plaintext; undefined: not known).
 * `source_principal`/`destination_principal` are the SPIFFE IDs only when mTLS proved them,
 * else "unknown" (a plaintext peer's service account proves nothing).
 * `connection_security_policy` is the destination's view of the downstream connection:
 * "mutual_tls" or "none" on `reporter="destination"`, and always "unknown" on
 * `reporter="source"` (Envoy's client side reports no policy).
 */

/** Envoy's response flags that nodemesh sets ("-" when none). Several join with ",". */
export const ResponseFlags = {
  NONE: '-',
  UPSTREAM_OVERFLOW: 'UO',
  UPSTREAM_CONNECT_FAILURE: 'UF',
  NO_HEALTHY_UPSTREAM: 'UH',
  UPSTREAM_RETRY_LIMIT_EXCEEDED: 'URX',
  UPSTREAM_TIMEOUT: 'UT',
  RATE_LIMITED: 'RL',
  FAULT_INJECTED: 'FI',
  DOWNSTREAM_CONNECTION_TERMINATION: 'DC',
  NO_ROUTE: 'NR',
  UPSTREAM_CONNECTION_TERMINATION: 'UC',
} as const;
export type ResponseFlag = (typeof ResponseFlags)[keyof typeof ResponseFlags];

/** Istio's default buckets for istio_request_duration_milliseconds. */
export const DURATION_BUCKETS_MS: readonly number[] = Object.freeze([
  0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000,
]);
/** Istio's default buckets for istio_request_bytes and istio_response_bytes. */
export const SIZE_BUCKETS_BYTES: readonly number[] = Object.freeze([1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000]);

/** Labels shared by every Istio metric, in Istio's order. */
export const PEER_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_canonical_service',
  'source_canonical_revision',
  'source_cluster',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_service',
  'destination_service_name',
  'destination_service_namespace',
  'destination_canonical_service',
  'destination_canonical_revision',
  'destination_cluster',
  'request_protocol',
] as const;
/** Labels of the HTTP/gRPC request metrics. */
export const REQUEST_LABELS = [...PEER_LABELS, 'response_code', 'grpc_response_status', 'response_flags', 'connection_security_policy'] as const;
/** Labels of the TCP metrics (Istio's TCP metrics have no response code). */
export const TCP_LABELS = [...PEER_LABELS, 'response_flags', 'connection_security_policy'] as const;

export type RequestLabels = Readonly<Record<(typeof REQUEST_LABELS)[number], string>>;
export type TcpLabels = Readonly<Record<(typeof TCP_LABELS)[number], string>>;

/** connection_security_policy, as Istio's stats filter gives it (see the module comment). */
export function securityPolicy(reporter: 'source' | 'destination', mtls: boolean | undefined): 'mutual_tls' | 'none' | 'unknown' {
  if (reporter === 'source' || mtls === undefined) return 'unknown';
  return mtls ? 'mutual_tls' : 'none';
}

/** A principal as a label or log field: only when mTLS proved it. */
export function provenPrincipal(principal: string | undefined, mtls: boolean | undefined): string | undefined {
  return mtls === true ? principal || undefined : undefined;
}
