import { cachedServiceKey, serviceHost, type Endpoint, type PodInfo, type ServiceInfo } from '../../mesh/model';
import type { AccessLog } from '../../telemetry/access-log';
import type { IstioMetrics, WorkloadInfo } from '../../telemetry/istio-metrics';
import { ensureRequestId, ensureTraceContext } from '../../telemetry/trace-context';
import { applyHeaderModifier, applyUrlRewrite, isIdempotent, pickWeighted, redirectLocation, shouldMirror, type RouteMatch } from '../../routing';
import { endpointKey } from '../../policy/load-balancer';
import type { ServicePolicy } from '../../policy/policy-set';
import { describeError } from '../../errors';
import type { Logger } from '../../log';
import type { ProxyConfig, ProxyConfigStore } from '../proxy-config';
import type { H2Sessions } from '../upstream/h2-sessions';
import type { Http1Pools } from '../upstream/http1-pools';
import { isConnectFailure, type UpstreamTransport } from '../upstream/transport';
import { collectBody } from './body-adapters';
import { Cancellation, sleep } from './cancellation';
import type { DownstreamExchange, RequestBody, UpstreamResponse } from './exchange';
import { forwardH2, forwardHttp1, type AttemptRequest } from './forward';
import { responseHeaders, single, type HeaderRecord } from './headers';

/** Bodies up to this size are buffered when a retry or a mirror may need to resend them. */
const MAX_BUFFERED_BODY = 1024 * 1024;
const NO_MIRRORS: RouteMatch['mirrors'] = [];
/** Retries on connection failure when the route configures none (nothing was sent). */
const DEFAULT_CONNECT_RETRIES = 2;

/** What the proxy knows about the connection a request arrived on. */
export interface ConnectionInfo {
  direction: 'outbound' | 'inbound';
  /** The enrolled pod whose listener accepted the connection. */
  pod: PodInfo | undefined;
  podKey: string;
  original: { family: 4 | 6; address: string; port: number };
  sourceAddress: string;
  /** The downstream protocol. */
  protocol: 'http1' | 'h2';
}

export interface PipelineDeps {
  config: ProxyConfigStore;
  pools: Http1Pools;
  sessions: H2Sessions;
  metrics: IstioMetrics;
  accessLog: AccessLog | undefined;
  logger: Logger;
  /** The transport from the connection's pod to an endpoint (direct, local hand-over, tunnel). */
  transportFor(conn: ConnectionInfo, endpoint: { address: string; port: number }): UpstreamTransport;
  /** Upstream protocol for a Service port: 'h2' for grpc/h2c appProtocol, else like downstream. */
  random?: () => number;
}

/** Everything decided about one request, for telemetry. */
interface RequestState {
  started: number;
  startedAt: number;
  flags: string[];
  attempts: number;
  upstreamHost?: string;
  route?: string;
  destService?: ServiceInfo;
  destWorkload?: WorkloadInfo;
  responseCode: number;
  grpcStatus?: number;
  responseBytes: number;
}

class ProxyResponseError extends Error {
  constructor(readonly status: number, readonly flag: string, message: string) {
    super(message);
  }
}

const routeNames = new WeakMap<RouteMatch, string>();

/** "HTTPRoute ns/name#rule" of a match (rules are compiled objects: the name is made once). */
function routeName(match: RouteMatch): string {
  let name = routeNames.get(match);
  if (name === undefined) {
    name = `${match.routeKey}#${match.ruleIndex}`;
    routeNames.set(match, name);
  }
  return name;
}

/** Removes grpc-status, grpc-message and grpc-status-details-bin from `headers` and returns them. */
function takeGrpcStatus(headers: HeaderRecord): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name of ['grpc-status', 'grpc-message', 'grpc-status-details-bin']) {
    const v = headers[name];
    if (v !== undefined) out[name] = v;
    delete headers[name];
  }
  return out;
}

/**
 * The L7 request pipeline of the node proxy: route (Gateway API), filter, police
 * (TrafficPolicy), pick an endpoint, send with retries and timeouts, mirror, and report.
 * The same code serves HTTP/1.1 and HTTP/2 (h2c, gRPC) downstreams.
 */
export class HttpPipeline {
  private readonly random: () => number;
  /** Load-balancer candidates per endpoint list (lists are per snapshot, so this follows config changes). */
  private readonly candidates = new WeakMap<readonly Endpoint[], Array<{ key: string; endpoint: Endpoint }>>();

  constructor(private readonly deps: PipelineDeps) {
    this.random = deps.random ?? Math.random;
  }

  async handle(ex: DownstreamExchange, conn: ConnectionInfo): Promise<void> {
    const config = this.deps.config.current; // kept to the end of the request
    const state: RequestState = { started: performance.now(), startedAt: Date.now(), flags: [], attempts: 0, responseCode: 0, responseBytes: 0 };
    const headers = ex.headers;
    const authority = ex.authority;
    const method = ex.method;
    let path = ex.path;
    const contentType = headers['content-type'];
    const grpc = typeof contentType === 'string' && contentType.startsWith('application/grpc');
    const { requestId } = ensureRequestId(headers);
    headers['x-request-id'] = requestId;
    const trace = ensureTraceContext(headers);
    headers['traceparent'] = trace.traceparent;

    const cancel = new Cancellation();
    ex.onClose(() => {
      state.flags.push('DC');
      cancel.cancel();
    });

    let match: RouteMatch | undefined;
    try {
      const svc = config.snapshot.serviceByClusterIP(conn.original.address, conn.original.port);
      let targetService: ServiceInfo | undefined;
      let targetPort = conn.original.port;
      if (svc?.port) {
        const routes = config.routes.forService(cachedServiceKey(svc.service), svc.port.port, grpc ? 'grpc' : 'http', conn.pod?.namespace);
        match = routes?.match({ method, path, headers });
        if (routes && !match) throw new ProxyResponseError(404, 'NR', `no route of ${svc.service.namespace}/${svc.service.name} matches ${method} ${path}`);
        state.route = match ? routeName(match) : undefined;
        if (match?.redirect) {
          const r = redirectLocation({ path, host: authority, scheme: 'http', port: svc.port.port }, match);
          ex.writeHead(r.status, { location: r.location, 'content-length': '0' });
          ex.end();
          state.responseCode = r.status;
          return;
        }
        if (match) {
          const backend = pickWeighted(match.backends, this.random);
          if (!backend || backend.unresolved) {
            throw new ProxyResponseError(500, 'NR', backend?.unresolved ?? `route ${match.routeKey} rule ${match.ruleIndex} has no backends`);
          }
          targetService = config.snapshot.service(backend.serviceKey);
          targetPort = backend.port;
          if (match.requestHeaderModifier) applyHeaderModifier(headers, match.requestHeaderModifier);
          if (backend.requestHeaderModifier) applyHeaderModifier(headers, backend.requestHeaderModifier);
          if (match.urlRewrite) {
            const rewritten = applyUrlRewrite({ path, host: authority }, match);
            path = rewritten.path;
            if (rewritten.host !== authority) headers['host'] = rewritten.host;
          }
        } else {
          targetService = svc.service;
          targetPort = svc.port.port;
        }
      }
      state.destService = targetService;

      const policy = targetService ? this.deps.config.policies.forService(cachedServiceKey(targetService)) : undefined;
      if (policy?.rateLimiter) {
        const source = conn.direction === 'outbound' && conn.pod ? config.workload(conn.pod) : this.peerWorkload(config, conn.sourceAddress);
        if (!policy.rateLimiter.tryTake(source ? `${source.namespace}/${source.name}` : undefined)) throw new ProxyResponseError(429, 'RL', 'local rate limit');
      }
      const fault = policy?.decideFault();
      if (fault?.delayMs) {
        state.flags.push('DI');
        await sleep(fault.delayMs, cancel);
      }
      if (fault?.abortStatus || fault?.abortGrpcStatus) {
        state.flags.push('FI');
        if (fault.abortGrpcStatus && grpc) {
          this.respondGrpcStatus(ex, fault.abortGrpcStatus, 'fault injected');
          state.responseCode = 200;
          state.grpcStatus = fault.abortGrpcStatus;
          return;
        }
        throw new ProxyResponseError(fault.abortStatus ?? 503, 'FI', 'fault injected');
      }
      let release: (() => void) | undefined;
      if (policy?.limiter) {
        try {
          release = await policy.limiter.acquire(cancel.signal);
        } catch {
          throw new ProxyResponseError(503, 'UO', 'upstream overflow: the connection pool limits of the destination are reached');
        }
      }
      try {
        // The authority upstream: a URL rewrite or a header filter may have set a Host header;
        // it travels as the authority (HTTP/1.1 host line, :authority), never twice.
        const upstreamAuthority = typeof headers['host'] === 'string' ? headers['host'] : authority;
        if (headers['host'] !== undefined) delete headers['host'];
        await this.sendWithRetries(ex, conn, config, { method, path, authority: upstreamAuthority, headers, grpc }, targetService, targetPort, policy, match, state, cancel);
      } finally {
        release?.();
      }
    } catch (err) {
      if (err instanceof ProxyResponseError) {
        state.flags.push(err.flag);
        this.respondError(ex, err.status, err.message, grpc, state);
      } else if (!cancel.cancelled) {
        this.deps.logger.warn({ err: describeError(err), path, pod: conn.podKey }, 'request failed');
        this.respondError(ex, 502, describeError(err), grpc, state);
      }
    } finally {
      this.report(conn, config, ex, method, path, grpc, state, requestId, trace.traceparent);
    }
  }

  private peerWorkload(config: ProxyConfig, address: string): WorkloadInfo | undefined {
    const ip = address.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
    const pod = config.snapshot.podByIP(ip);
    return pod ? config.workload(pod) : undefined;
  }

  private async sendWithRetries(
    ex: DownstreamExchange,
    conn: ConnectionInfo,
    config: ProxyConfig,
    request: { method: string; path: string; authority: string; headers: HeaderRecord; grpc: boolean },
    targetService: ServiceInfo | undefined,
    targetPort: number,
    policy: ServicePolicy | undefined,
    match: RouteMatch | undefined,
    state: RequestState,
    cancel: Cancellation,
  ): Promise<void> {
    const retry = match?.retry;
    const maxRetries = retry ? retry.attempts : DEFAULT_CONNECT_RETRIES;
    const mirrors = match && match.mirrors.length > 0 ? match.mirrors.filter((m) => shouldMirror(m, this.random)) : NO_MIRRORS;
    const needBuffer = (retry !== undefined && retry.attempts > 0) || mirrors.length > 0;
    let body: RequestBody = ex.body;
    if (body !== undefined && !Buffer.isBuffer(body) && needBuffer && (ex.contentLength === undefined || ex.contentLength <= MAX_BUFFERED_BODY)) {
      body = await collectBody(body, MAX_BUFFERED_BODY);
    }
    const resendable = body === undefined || Buffer.isBuffer(body);
    const idempotent = isIdempotent(request.method);
    const budget = targetService ? this.deps.config.retryBudget(cachedServiceKey(targetService)) : undefined;
    budget?.recordRequest();

    const requestTimeout = match?.timeouts.requestMs;
    const perAttempt = match?.timeouts.backendRequestMs;
    let requestTimer: NodeJS.Timeout | undefined;
    if (requestTimeout) {
      requestTimer = setTimeout(() => {
        state.flags.push('UT');
        cancel.cancel(new ProxyResponseError(504, 'UT', `request timeout ${requestTimeout} ms`));
      }, requestTimeout);
    }
    const family = conn.original.family;
    try {
      for (let attempt = 0; ; attempt++) {
        const target = this.pickTarget(config, conn, targetService, targetPort, family, policy, request.headers);
        if (!target) throw new ProxyResponseError(503, 'UH', `no healthy upstream for ${targetService ? `${targetService.namespace}/${targetService.name}` : conn.original.address}:${targetPort}`);
        state.attempts = attempt + 1;
        state.upstreamHost = target.key;
        const pod = target.endpoint?.podKey ? config.snapshot.pods.get(target.endpoint.podKey) : config.snapshot.podByIP(target.address);
        if (pod) state.destWorkload = config.workload(pod);
        // Only a per-attempt timeout needs a token of its own; otherwise the request's
        // (client gone, request timeout) serves the attempt.
        const child = perAttempt ? cancel.child() : undefined;
        const attemptCancel = child?.token ?? cancel;
        let attemptTimer: NodeJS.Timeout | undefined;
        let timedOut = false;
        if (child) attemptTimer = setTimeout(() => { timedOut = true; child.token.cancel(); }, perAttempt);
        const startedAttempt = performance.now();
        const lbEp = { key: target.key };
        policy?.lb.onStart(lbEp);
        let response: UpstreamResponse | undefined;
        let failure: unknown;
        try {
          const transport = this.deps.transportFor(conn, target);
          const attemptReq: AttemptRequest = { method: request.method, path: request.path, authority: request.authority, headers: request.headers, body, contentLength: ex.contentLength, cancel: attemptCancel };
          response = request.grpc || this.upstreamIsH2(conn, targetService, targetPort)
            ? await forwardH2(this.deps.sessions, transport, target.address, target.port, attemptReq)
            : await forwardHttp1(this.deps.pools, transport, target.address, target.port, attemptReq);
        } catch (err) {
          failure = err;
        }
        const latency = performance.now() - startedAttempt;
        const status = response?.status;
        const connectFailed = failure !== undefined && isConnectFailure(failure);
        policy?.outliers?.record(target.key, status !== undefined ? { status } : { connectFailure: true });
        const retryable =
          (status !== undefined && retry !== undefined && retry.codes.includes(status)) || connectFailed || (timedOut && retry !== undefined);
        const canRetry = retryable && attempt < maxRetries && resendable && (idempotent || connectFailed || retry !== undefined) && !cancel.cancelled;
        if (canRetry && (connectFailed && !retry ? true : budget?.tryRetry() ?? true)) {
          policy?.lb.onEnd(lbEp, latency, false);
          clearTimeout(attemptTimer);
          child?.detach();
          response?.body?.discard();
          if (retry?.backoffMs) await sleep(retry.backoffMs * 2 ** attempt, cancel);
          continue;
        }
        // Retrying was wanted but not possible: attempts used up, or the budget refused.
        if (retryable && retry !== undefined && retry.attempts > 0 && !cancel.cancelled) state.flags.push('URX');
        if (!response) {
          policy?.lb.onEnd(lbEp, latency, false);
          clearTimeout(attemptTimer);
          child?.detach();
          if (cancel.cancelled) {
            if (cancel.reason instanceof ProxyResponseError) throw cancel.reason;
            return;
          }
          if (timedOut) throw new ProxyResponseError(504, 'UT', `upstream request timeout ${perAttempt} ms`);
          if (connectFailed) throw new ProxyResponseError(503, 'UF', `upstream connect error: ${describeError(failure)}`);
          throw new ProxyResponseError(503, 'UC', `upstream connection error: ${describeError(failure)}`);
        }
        for (const m of mirrors) this.mirror(config, conn, m.backend.serviceKey, m.backend.port, request, body as Buffer | undefined, family);
        try {
          await this.relayResponse(ex, response, match, state, attemptCancel);
          policy?.lb.onEnd(lbEp, latency, response.status < 500);
        } finally {
          clearTimeout(attemptTimer);
          child?.detach();
        }
        if (timedOut && !ex.headersSent) throw new ProxyResponseError(504, 'UT', `upstream request timeout ${perAttempt} ms`);
        return;
      }
    } finally {
      clearTimeout(requestTimer);
    }
  }

  private upstreamIsH2(conn: ConnectionInfo, svc: ServiceInfo | undefined, port: number): boolean {
    const p = svc?.ports.find((x) => x.port === port);
    const app = (p?.appProtocol ?? '').toLowerCase();
    if (app === 'kubernetes.io/h2c' || app === 'grpc' || app === 'h2c' || app === 'http2') return true;
    if (app === 'http' || app === 'kubernetes.io/http') return false;
    return conn.protocol === 'h2';
  }

  /** The endpoint to send to: a Service endpoint chosen by the load balancer, or the original destination. */
  private pickTarget(
    config: ProxyConfig,
    conn: ConnectionInfo,
    svc: ServiceInfo | undefined,
    port: number,
    family: 4 | 6,
    policy: ServicePolicy | undefined,
    headers: HeaderRecord,
  ): { key: string; address: string; port: number; endpoint?: Endpoint } | undefined {
    if (!svc) return { key: endpointKey(conn.original.address, conn.original.port), address: conn.original.address, port: conn.original.port };
    const servicePort = svc.ports.find((p) => p.port === port);
    if (!servicePort) return undefined;
    const eps = config.snapshot.readyEndpoints(svc, servicePort, family);
    let candidates = this.candidates.get(eps);
    if (!candidates) {
      candidates = eps.map((e) => ({ key: endpointKey(e.address, e.port), endpoint: e }));
      this.candidates.set(eps, candidates);
    }
    const chosen = policy ? policy.pick(candidates, { hashKey: policy.hashKey((n) => headers[n]) }) : candidates[Math.floor(this.random() * candidates.length)];
    if (!chosen) return undefined;
    return { key: chosen.key, address: chosen.endpoint.address, port: chosen.endpoint.port, endpoint: chosen.endpoint };
  }

  private relayResponse(ex: DownstreamExchange, up: UpstreamResponse, match: RouteMatch | undefined, state: RequestState, cancel: Cancellation): Promise<void> {
    const headers = up.endToEnd ? up.headers : (responseHeaders(up.headers) as HeaderRecord);
    if (match?.responseHeaderModifier) applyHeaderModifier(headers, match.responseHeaderModifier);
    state.responseCode = up.status;
    const grpcHeader = single(up.headers['grpc-status']);
    if (grpcHeader !== undefined) state.grpcStatus = Number(grpcHeader);
    // A gRPC "Trailers-Only" response (one HEADERS frame carrying grpc-status, END_STREAM)
    // cannot be written as such through the compatibility API, which always sends the
    // response headers first: send its status as trailers, which gRPC clients read the
    // same way (they ignore a grpc-status in the leading headers without END_STREAM).
    const isGrpc = String(single(up.headers['content-type']) ?? '').startsWith('application/grpc');
    const trailersOnly = grpcHeader !== undefined && isGrpc ? takeGrpcStatus(headers) : undefined;
    ex.writeHead(up.status, headers);
    const body = up.body;
    if (!body) {
      ex.end(trailersOnly as HeaderRecord | undefined);
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      let done = false;
      const off = cancel.onCancel(() => {
        if (done) return;
        done = true;
        body.destroy();
        ex.destroy();
        resolve();
      });
      body.start({
        write(chunk) {
          state.responseBytes += chunk.length;
          // Back-pressure: stop reading upstream while the client is slow.
          const ok = ex.write(chunk);
          if (!ok && !ex.closed) ex.onDrain(() => body.resume());
          return ok;
        },
        end(trailers) {
          if (done) return;
          done = true;
          off();
          const gs = trailers ? single(trailers['grpc-status']) : undefined;
          if (gs !== undefined) state.grpcStatus = Number(gs);
          const out = trailersOnly || trailers ? { ...trailersOnly, ...(trailers ? responseHeaders(trailers) as HeaderRecord : undefined) } : undefined;
          ex.end(out);
          resolve();
        },
        fail() {
          if (done) return;
          done = true;
          off();
          state.flags.push('UC');
          ex.destroy();
          resolve();
        },
      });
    });
  }

  private mirror(config: ProxyConfig, conn: ConnectionInfo, serviceKey: string, port: number, request: { method: string; path: string; authority: string; headers: HeaderRecord; grpc: boolean }, body: Buffer | undefined, family: 4 | 6): void {
    const svc = config.snapshot.service(serviceKey);
    if (!svc) return;
    const target = this.pickTarget(config, conn, svc, port, family, this.deps.config.policies.forService(serviceKey), request.headers);
    if (!target) return;
    const cancel = new Cancellation();
    const timer = setTimeout(() => cancel.cancel(), 30_000).unref();
    const headers = { ...request.headers };
    // Istio/Envoy mark shadow traffic by suffixing the authority with -shadow.
    const authority = request.authority ? `${request.authority.replace(/(:\d+)?$/, '-shadow$1')}` : request.authority;
    const transport = this.deps.transportFor(conn, target);
    const mirrored: AttemptRequest = { method: request.method, path: request.path, authority, headers, body, contentLength: body?.length, cancel };
    const sent = request.grpc
      ? forwardH2(this.deps.sessions, transport, target.address, target.port, mirrored)
      : forwardHttp1(this.deps.pools, transport, target.address, target.port, mirrored);
    sent.then(
      (r) => {
        if (!r.body) return clearTimeout(timer);
        r.body.start({ write: () => true, end: () => clearTimeout(timer), fail: () => clearTimeout(timer) });
      },
      (err: unknown) => {
        clearTimeout(timer);
        this.deps.logger.debug({ err: describeError(err), mirror: serviceKey }, 'mirror request failed');
      },
    );
  }

  private respondGrpcStatus(ex: DownstreamExchange, code: number, message: string): void {
    if (ex.headersSent) { ex.destroy(); return; }
    ex.writeHead(200, { 'content-type': 'application/grpc' });
    // In trailers: see relayResponse (a grpc-status in the leading headers is not read).
    ex.end({ 'grpc-status': String(code), 'grpc-message': encodeURIComponent(message) });
  }

  private respondError(ex: DownstreamExchange, status: number, message: string, grpc: boolean, state: RequestState): void {
    if (ex.headersSent || ex.closed) {
      ex.destroy();
      return;
    }
    state.responseCode = grpc ? 200 : status;
    if (grpc) {
      // gRPC clients read failures from grpc-status (HTTP status 200, trailers-only).
      const code = status === 429 || status === 503 ? 14 : status === 504 ? 4 : status === 404 ? 12 : 13;
      state.grpcStatus = code;
      this.respondGrpcStatus(ex, code, message);
      return;
    }
    const body = Buffer.from(`${message}\n`);
    state.responseBytes = body.length;
    ex.writeHead(status, { 'content-type': 'text/plain', 'content-length': String(body.length), 'x-nodemesh-flags': [...new Set(state.flags)].join(',') || '-' });
    ex.write(body);
    ex.end();
  }

  private report(conn: ConnectionInfo, config: ProxyConfig, ex: DownstreamExchange, method: string, path: string, grpc: boolean, state: RequestState, requestId: string, traceparent: string): void {
    const durationMs = performance.now() - state.started;
    const flags = state.flags.length ? [...new Set(state.flags)].join(',') : '-';
    const source = conn.direction === 'outbound' && conn.pod ? config.workload(conn.pod) : this.peerWorkload(config, conn.sourceAddress);
    const destination = conn.direction === 'inbound' && conn.pod ? config.workload(conn.pod) : state.destWorkload;
    const svc = state.destService;
    const destinationService = svc ? { name: svc.name, namespace: svc.namespace, host: serviceHost(svc) } : undefined;
    this.deps.metrics.recordRequest({
      reporter: conn.direction === 'outbound' ? 'source' : 'destination',
      ...(source ? { source } : {}),
      ...(destination ? { destination } : {}),
      ...(destinationService ? { destinationService } : {}),
      protocol: grpc ? 'grpc' : 'http',
      responseCode: state.responseCode,
      ...(state.grpcStatus !== undefined ? { grpcStatus: state.grpcStatus } : {}),
      responseFlags: flags,
      durationMs,
      requestBytes: ex.bodyBytesRead,
      responseBytes: state.responseBytes,
      mtls: false,
    });
    this.deps.accessLog?.http({
      startTime: state.startedAt,
      durationMs,
      reporter: conn.direction === 'outbound' ? 'source' : 'destination',
      ...(source ? { source } : {}),
      sourceAddress: conn.sourceAddress,
      ...(destination ? { destination } : {}),
      ...(destinationService ? { destinationService: destinationService.host } : {}),
      ...(state.upstreamHost ? { upstreamHost: state.upstreamHost } : {}),
      ...(state.route ? { route: state.route } : {}),
      responseFlags: flags,
      bytesReceived: ex.bodyBytesRead,
      bytesSent: state.responseBytes,
      attempts: Math.max(1, state.attempts),
      method,
      path,
      protocol: conn.protocol === 'h2' ? 'HTTP/2' : 'HTTP/1.1',
      responseCode: state.responseCode,
      ...(state.grpcStatus !== undefined ? { grpcStatus: state.grpcStatus } : {}),
      requestId,
      traceparent,
      ...(ex.headers['user-agent'] ? { userAgent: String(ex.headers['user-agent']) } : {}),
    });
  }
}
