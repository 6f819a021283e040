import type { SimFixture } from '../../src/sim/harness';
import type { MeshCase, MeshClient, MeshConformanceTest, MeshRedirect, MeshRequest } from './mesh-case-types';
import { podsOf, type MeshPod, type MeshTopology } from './mesh-topology';

/**
 * Runs translated Gateway API mesh conformance tests on the simulator, the way the
 * upstream suite's mesh client does (utils/echo/pod.go): each request is sent from inside
 * a mesh pod (here by the L7 test client, src/sim/apps/l7-client.ts, in the pod's network
 * namespace and cgroup, where capture applies), and the answer is compared as
 * compareRequest compares it:
 * - the status code (one of StatusCodes; for gRPC, OK counts as 200);
 * - headers the backend received (ExpectedRequest.Headers, values of a repeated header
 *   joined with ","), and those it must not have (ExpectedRequest.AbsentHeaders);
 * - response headers present (Response.Headers) and absent (Response.AbsentHeaders);
 * - the pod that answered starts with Backend.
 * The runner also checks a redirect's Location against RedirectRequest as the suite's
 * Gateway tests do (utils/http.CompareRoundTrip): the upstream mesh client reads no
 * Location, so this is stricter than the suite, never looser.
 *
 * Eventual consistency is the suite's default TimeoutConfig: a case passes after
 * RequiredConsecutiveSuccesses (3) passing requests in a row within
 * MaxTimeToConsistency (30 s). Weighted distributions: 500 requests, within 5% of each
 * weight, up to MaxTestRetries (10) attempts (utils/weight).
 */

export const TIMEOUTS = { requiredConsecutiveSuccesses: 3, maxTimeToConsistencyMs: 30_000, requestTimeoutMs: 5_000 } as const;
const WEIGHT = { totalRequests: 500, tolerance: 0.05, maxTestRetries: 10 } as const;

export interface CaseOutcome {
  test: string;
  case: string;
  passed: boolean;
  /** The last mismatch, for a failure. */
  detail?: string;
  requests: number;
}

/** What one request saw, in the terms of the suite's echo Response. */
interface Observed {
  status: number;
  responseHeaders: Record<string, string>;
  /** Lower-case name -> values, as the backend received them; undefined when no backend answered. */
  requestHeaders: Record<string, string[]> | undefined;
  /** The responding pod. */
  hostname: string;
  location: string | undefined;
}

export class MeshRunner {
  constructor(private readonly sim: SimFixture, private readonly topology: MeshTopology) {}

  /** Every case of a test, in order; a failed case does not stop the others. */
  async run(test: MeshConformanceTest): Promise<CaseOutcome[]> {
    const out: CaseOutcome[] = [];
    for (const step of test.steps) {
      const client = this.clientPod(step.client);
      if (step.kind === 'expect') {
        for (const c of step.cases) out.push(await this.eventually(test.shortName, client, c));
      } else {
        const warm = await this.eventually(test.shortName, client, step.warmup);
        out.push(warm);
        out.push(warm.passed ? await this.weights(test.shortName, client, step.warmup, step.expected) : { test: test.shortName, case: 'weighted distribution', passed: false, detail: 'not run: the warm-up request did not pass', requests: 0 });
      }
    }
    return out;
  }

  /** echo.ConnectToAppInNamespace: the first pod of the app. */
  private clientPod(client: MeshClient): MeshPod {
    const pod = podsOf(this.topology, client.app, client.namespace)[0];
    if (!pod) throw new Error(`no pod of app ${client.app} in ${client.namespace} in the topology`);
    return pod;
  }

  private async eventually(test: string, client: MeshPod, c: MeshCase): Promise<CaseOutcome> {
    const deadline = Date.now() + TIMEOUTS.maxTimeToConsistencyMs;
    let inARow = 0;
    let requests = 0;
    let detail = '';
    while (Date.now() < deadline) {
      requests += 1;
      let problem: string | undefined;
      try {
        problem = compare(c, await this.send(client, c.request), this.hostOf(c.request));
      } catch (err) {
        problem = `request failed: ${(err as Error).message}`;
      }
      if (problem === undefined) {
        inARow += 1;
        if (inARow >= TIMEOUTS.requiredConsecutiveSuccesses) return { test, case: c.name, passed: true, requests };
      } else {
        inARow = 0;
        detail = problem;
        // The suite polls; a short pause keeps a failing case from spinning the CPU for 30 s.
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    return { test, case: c.name, passed: false, detail, requests };
  }

  private async weights(test: string, client: MeshPod, c: MeshCase, expected: Record<string, number>): Promise<CaseOutcome> {
    let detail = '';
    for (let attempt = 1; attempt <= WEIGHT.maxTestRetries; attempt++) {
      const served = await this.batch(client, c.request, WEIGHT.totalRequests);
      const problems: string[] = [];
      const seen = new Map<string, number>();
      let total = 0;
      for (const [pod, n] of Object.entries(served)) {
        total += n;
        const backend = backendOf(pod);
        if (!(backend in expected)) problems.push(`request was handled by an unexpected pod ${pod} (backend ${backend})`);
        else seen.set(backend, (seen.get(backend) ?? 0) + n);
      }
      if (total !== WEIGHT.totalRequests) problems.push(`expected ${WEIGHT.totalRequests} responses but got ${total}`);
      const active = Object.values(expected).filter((w) => w > 0).length;
      if (seen.size !== active) problems.push(`expected ${active} backends to receive traffic, but got ${seen.size}`);
      for (const [backend, want] of Object.entries(expected)) {
        const got = (seen.get(backend) ?? 0) / WEIGHT.totalRequests;
        if (Math.abs(got - want) > WEIGHT.tolerance) problems.push(`backend ${backend} weighted traffic of ${got} not within tolerance ${want} (+/-${WEIGHT.tolerance})`);
      }
      if (problems.length === 0) return { test, case: 'weighted distribution', passed: true, requests: attempt * WEIGHT.totalRequests };
      detail = `attempt ${attempt}: ${problems.join('; ')}`;
    }
    return { test, case: 'weighted distribution', passed: false, detail, requests: WEIGHT.maxTestRetries * WEIGHT.totalRequests };
  }

  /** The host (and port) the request goes to, as the suite computes it. */
  private hostOf(r: MeshRequest): string {
    if (r.hostFromPodAddress) {
      const pod = podsOf(this.topology, r.hostFromPodAddress.app, r.hostFromPodAddress.namespace)[0];
      if (!pod) throw new Error(`no pod of ${r.hostFromPodAddress.app} in ${r.hostFromPodAddress.namespace}`);
      return `${pod.ip}:${r.hostFromPodAddress.port}`;
    }
    return calculateHost(r.host || 'echo', r.protocol ?? 'http');
  }

  private async send(client: MeshPod, r: MeshRequest): Promise<Observed> {
    const host = this.hostOf(r);
    const timeout = ['--timeout', String(TIMEOUTS.requestTimeoutMs)];
    if (r.protocol === 'grpc') {
      const reply = await this.sim.l7Client(client.key, ['grpc', withPort(host, 80), 'unary', '--message', 'conformance', ...timeout]);
      return { status: reply.ok ? 200 : grpcToHttp(reply.code), responseHeaders: {}, requestHeaders: undefined, hostname: String(reply.servedBy ?? ''), location: undefined };
    }
    const args = ['http', `http://${host}${r.path ?? ''}`, '--method', r.method || 'GET', ...timeout];
    for (const [k, v] of Object.entries(r.headers ?? {})) args.push('--header', `${k}:${v}`);
    const reply = await this.sim.l7Client(client.key, args);
    if (reply.error) throw new Error(`${String(reply.error)}: ${String(reply.message ?? '')}`);
    const responseHeaders: Record<string, string> = {};
    for (const [k, v] of Object.entries(reply.headers ?? {})) responseHeaders[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : String(v);
    const json = reply.json as { name?: string; rawHeaders?: string[] } | undefined;
    let requestHeaders: Record<string, string[]> | undefined;
    if (json && Array.isArray(json.rawHeaders)) {
      requestHeaders = {};
      for (let i = 0; i + 1 < json.rawHeaders.length; i += 2) (requestHeaders[json.rawHeaders[i]!.toLowerCase()] ??= []).push(json.rawHeaders[i + 1]!);
    }
    return { status: reply.status, responseHeaders, requestHeaders, hostname: json?.name ?? '', location: responseHeaders.location };
  }

  /** `count` requests of one kind from one client; pod name -> requests it served. */
  private async batch(client: MeshPod, r: MeshRequest, count: number): Promise<Record<string, number>> {
    const host = this.hostOf(r);
    const timeout = ['--timeout', String(TIMEOUTS.requestTimeoutMs)];
    if (r.protocol === 'grpc') {
      const reply = await this.sim.l7Client(client.key, ['grpc', withPort(host, 80), 'unary', '--message', 'conformance', '--calls', String(count), ...timeout]);
      return reply.servedBy ?? {};
    }
    const reply = await this.sim.l7Client(client.key, ['http', `http://${host}${r.path ?? ''}`, '--method', r.method || 'GET', '--count', String(count), '--concurrency', '4', ...timeout]);
    return reply.servedBy ?? {};
  }
}

/** The suite's compareRequest (utils/echo/pod.go), plus the redirect check described above; undefined when it passes. */
export function compare(c: MeshCase, got: Observed, requestHost: string): string | undefined {
  const grpc = c.request.protocol === 'grpc';
  const codes = [...(c.response.statusCodes ?? [])];
  if (c.response.statusCode !== undefined && !codes.includes(c.response.statusCode)) codes.push(c.response.statusCode);
  if (codes.length === 0) codes.push(200);
  const wanted = grpc ? codes.map((x) => (x === 0 ? 200 : x)) : codes;
  if (!wanted.includes(got.status)) return `wanted status code to be one of ${JSON.stringify(wanted)}, got ${got.status}`;
  const want = c.expectedRequest;
  if (want?.headers) {
    if (!got.requestHeaders) return `no headers captured, expected ${Object.keys(want.headers).length}`;
    for (const [name, value] of Object.entries(want.headers)) {
      const actual = got.requestHeaders[name.toLowerCase()];
      if (!actual) return `expected ${name} header to be set, actual headers: ${JSON.stringify(got.requestHeaders)}`;
      if (actual.join(',') !== value) return `expected ${name} header to be set to ${value}, got ${actual.join(',')}`;
    }
  }
  for (const name of want?.absentHeaders ?? []) {
    const actual = got.requestHeaders?.[name.toLowerCase()];
    if (actual) return `expected ${name} header to not be set, got ${actual.join(',')}`;
  }
  for (const name of c.response.absentHeaders ?? []) {
    if (got.responseHeaders[name.toLowerCase()] !== undefined) return `expected no header "${name}", got ${got.responseHeaders[name.toLowerCase()]}`;
  }
  for (const [name, value] of Object.entries(c.response.headers ?? {})) {
    const actual = got.responseHeaders[name.toLowerCase()] ?? '';
    if (actual !== value) return `expected header ${name}=${value}, got ${actual}`;
  }
  if (!got.hostname.startsWith(c.backend ?? '')) return `expected pod name to start with ${c.backend ?? ''}, got ${got.hostname}`;
  if (c.redirectRequest) return compareRedirect(c.redirectRequest, got.location, requestHost, c.request.path ?? '');
  return undefined;
}

/** utils/http.CompareRoundTrip's redirect checks, with setRedirectRequestDefaults. */
function compareRedirect(expected: MeshRedirect, location: string | undefined, requestHost: string, requestPath: string): string | undefined {
  if (location === undefined) return 'expected a redirect (a Location header), got none';
  let url: URL;
  try {
    url = new URL(location, `http://${requestHost}`);
  } catch {
    return `the Location "${location}" is not a URL`;
  }
  const got = { scheme: url.protocol.replace(/:$/, ''), host: url.hostname, port: url.port, path: url.pathname };
  const host = expected.host || got.host;
  const scheme = expected.scheme || 'http';
  const path = expected.path || new URL(requestPath || '/', 'http://x').pathname;
  if (host !== got.host) return `expected redirected hostname to be "${host}", got "${got.host}"`;
  if (!expected.port) {
    if (got.scheme === 'http' && got.port !== '80' && got.port !== '') return `for http scheme, expected redirected port to be 80 or not set, got "${got.port}"`;
    if (got.scheme === 'https' && got.port !== '443' && got.port !== '') return `for https scheme, expected redirected port to be 443 or not set, got "${got.port}"`;
  } else if (expected.port !== got.port) {
    return `expected redirected port to be "${expected.port}", got "${got.port}"`;
  }
  if (scheme !== got.scheme) return `expected redirected scheme to be "${scheme}", got "${got.scheme}"`;
  if (path !== got.path) return `expected redirected path to be "${path}", got "${got.path}"`;
  return undefined;
}

/** utils/http.CalculateHost: a default port (80 for http) is left out. */
function calculateHost(host: string, scheme: string): string {
  const m = /^(.*):(\d+)$/.exec(host);
  if (m && !m[1]!.includes(':') && scheme.toLowerCase() === 'http' && m[2] === '80') return m[1]!;
  return host;
}

function withPort(host: string, port: number): string {
  return /:\d+$/.test(host) ? host : `${host}:${port}`;
}

/** utils/weight.extractBackendName: the pod name without its ReplicaSet and pod hashes. */
function backendOf(pod: string): string {
  const parts = pod.split('-');
  return parts.length < 3 ? pod : parts.slice(0, -2).join('-');
}

/** A gRPC status as the suite's echo client reports it (OK as 200; others as themselves). */
function grpcToHttp(code: unknown): number {
  return typeof code === 'number' ? (code === 0 ? 200 : 1000 + code) : 0;
}
