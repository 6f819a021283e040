import type { Labels } from '../../util/prom-text';

/** The figures the demo measured, step by step (what `runDemo` returns and its test checks). */

export interface WorkloadIdentity {
  pod: string;
  node: string;
  /** The SPIFFE ID of the pod's certificate, from its agent. */
  identity: string;
  certificateExpiry?: string;
}

export interface CanaryFigures {
  requests: number;
  /** Answers of reviews by version (from the frontend's replies). */
  versions: Record<string, number>;
  /** reviews-v2's share of the answers, in percent. */
  v2Percent: number;
  /** Requests to the frontend that did not come back 200. */
  failed: number;
}

export interface ResilienceFigures {
  requests: number;
  /** The share of requests the broken endpoint (ratings-2) fails, 0..1. */
  failShare: number;
  /** The status the frontend got from ratings (after the mesh's retries), by code. */
  ratingsStatuses: Record<string, number>;
  /** Attempts the backends answered (ratings-1 and ratings-2 together, from their own counters). */
  backendAttempts: number;
  /** Of those, 503s ratings-2 gave. */
  backendFailures: number;
  /** Retries the frontend's proxy made (node1's access log: attempts - 1, summed over the calls to ratings). */
  retries: number;
  /** Calls to ratings in the access log. */
  loggedCalls: number;
  /** Endpoints outlier detection ejected (node1's /debug/config), e.g. "10.244.2.22:8080". */
  ejected: string[];
}

export interface MtlsFigures {
  identities: WorkloadIdentity[];
  /** Requests and TCP connections node2 counted as the destination with mutual_tls and the frontend's SPIFFE ID. */
  mutualTlsStreams: number;
  /** What the pod outside the mesh got in plaintext under STRICT (an error: refused). */
  plaintextFromOutside: { status?: number; error?: string };
  /** nodemesh_mtls_plaintext_refused_total on node2 after the attempt. */
  refusedCount: number;
  /** Requests through the mesh under STRICT that came back 200, of `meshRequests`. */
  meshOk: number;
  meshRequests: number;
}

export interface AuthzFigures {
  /** loadgen -> ratings: the status and body it got. */
  denied: { status?: number; body?: string; error?: string };
  /** The frontend's calls to ratings still admitted (200s of the frontend's replies). */
  frontendOk: number;
  frontendRequests: number;
  /** What `nodemesh authz check` says of the denied call. */
  check: { verdict: string; decidedBy?: string; text: string };
  /** nodemesh_authz_denied_total on node2. */
  deniedCount: number;
}

export interface MetricFigure { name: string; labels: Labels; value: number }

export interface MetricsFigures {
  /** istio_requests_total series of namespace shop, read from node1's and node2's /metrics; `agent` names the agent. */
  requests: Array<MetricFigure & { agent: string }>;
  /** Series of istio_* families with connection_security_policy="mutual_tls". */
  mutualTls: Array<MetricFigure & { agent: string }>;
}

export interface BenchRow {
  mode: string;
  placement: string;
  connections: number;
  requests: number;
  p50Ms: number;
  p99Ms: number;
  addedP50Ms: number | null;
  addedP99Ms: number | null;
  proxyCpuSPer1000: number | null;
}

export interface BenchFigures {
  rows: BenchRow[];
  skipped: Array<{ mode: string; reason: string }>;
  /** Where the bench's reports went (kept with --keep, else removed with the rest). */
  reportDir: string;
  elapsedS: number;
}

export interface DemoResult {
  sim: string;
  identities: WorkloadIdentity[];
  canary?: CanaryFigures;
  resilience?: ResilienceFigures;
  mtls?: MtlsFigures;
  authz?: AuthzFigures;
  metrics?: MetricsFigures;
  bench?: BenchFigures;
  elapsedS: number;
}
