import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { isIPv6 } from 'node:net';
import { pipeline, Readable, Transform } from 'node:stream';
import type { Endpoint, PodInfo, ServiceInfo } from '../../mesh/model';
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
import { forwardH2, forwardHttp1, type AttemptRequest, type UpstreamResponse } from './forward';
import { requestHeaders, responseHeaders, single, type HeaderRecord } from './headers';

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/** Bodies up to this size are buffered when a retry or a mirror may need to resend them. */
const MAX_BUFFERED_BODY = 1024 * 1024;
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
  requestBytes: number;
  responseBytes: number;
}

class ProxyResponseError extends Error {
  constructor(readonly status: number, readonly flag: string, message: string) {
    super(message);
  }
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

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}

/**
 * The L7 request pipeline of the node proxy: route (Gateway API), filter, police
 * (TrafficPolicy), pick an endpoint, send with retries and timeouts, mirror, and report.
 * The same code serves HTTP/1.1 and HTTP/2 (h2c, gRPC) downstreams.
 */
export class HttpPipeline {
  private readonly random: () => number;

  constructor(private readonly deps: PipelineDeps) {
    this.random = deps.random ?? Math.random;
  }

  async handle(req: Req, res: Res, conn: ConnectionInfo): Promise<void> {
    const config = this.deps.config.current; // kept to the end of the request
    const state: RequestState = { started: performance.now(), startedAt: Date.now(), flags: [], attempts: 0, responseCode: 0, requestBytes: 0, responseBytes: 0 };
    const { headers, authority } = requestHeaders(req.headers);
    const method = req.method ?? 'GET';
    let path = (req as { url?: string }).url ?? '/';
    const grpc = String(headers['content-type'] ?? '').startsWith('application/grpc');
    const { requestId } = ensureRequestId(headers);
    headers['x-request-id'] = requestId;
    const trace = ensureTraceContext(headers);
    headers['traceparent'] = trace.traceparent;

    const abort = new AbortController();
    const onClientGone = () => {
      if (!res.writableFinished) {
        state.flags.push('DC');
        abort.abort();
      }
    };
    res.once('close', onClientGone);

    let match: RouteMatch | undefined;
    try {
      const svc = config.snapshot.serviceByClusterIP(conn.original.address, conn.original.port);
      let targetService: ServiceInfo | undefined;
      let targetPort = conn.original.port;
      if (svc?.port) {
        const routes = config.routes.forService(`${svc.service.namespace}/${svc.service.name}`, svc.port.port, grpc ? 'grpc' : 'http', conn.pod?.namespace);
        match = routes?.match({ method, path, headers });
        if (routes && !match) throw new ProxyResponseError(404, 'NR', `no route of ${svc.service.namespace}/${svc.service.name} matches ${method} ${path}`);
        state.route = match ? `${match.routeKey}#${match.ruleIndex}` : undefined;
        if (match?.redirect) {
          const r = redirectLocation({ path, host: authority, scheme: 'http', port: svc.port.port }, match);
          res.writeHead(r.status, { location: r.location });
          res.end();
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

      const policy = targetService ? this.deps.config.policies.forService(`${targetService.namespace}/${targetService.name}`) : undefined;
      const source = conn.direction === 'outbound' && conn.pod ? config.workload(conn.pod) : this.peerWorkload(config, conn.sourceAddress);
      if (policy?.rateLimiter && !policy.rateLimiter.tryTake(source ? `${source.namespace}/${source.name}` : undefined)) {
        throw new ProxyResponseError(429, 'RL', 'local rate limit');
      }
      const fault = policy?.decideFault() ?? {};
      if (fault.delayMs) {
        state.flags.push('DI');
        await sleep(fault.delayMs, abort.signal);
      }
      if (fault.abortStatus || fault.abortGrpcStatus) {
        state.flags.push('FI');
        if (fault.abortGrpcStatus && grpc) {
          this.respondGrpcStatus(res, fault.abortGrpcStatus, 'fault injected');
          state.responseCode = 200;
          state.grpcStatus = fault.abortGrpcStatus;
          return;
        }
        throw new ProxyResponseError(fault.abortStatus ?? 503, 'FI', 'fault injected');
      }
      let release: (() => void) | undefined;
      if (policy?.limiter) {
        try {
          release = await policy.limiter.acquire(abort.signal);
        } catch {
          throw new ProxyResponseError(503, 'UO', 'upstream overflow: the connection pool limits of the destination are reached');
        }
      }
      try {
        await this.sendWithRetries(req, res, conn, config, { method, path, authority, headers, grpc }, targetService, targetPort, policy, match, state, abort);
      } finally {
        release?.();
      }
    } catch (err) {
      if (err instanceof ProxyResponseError) {
        state.flags.push(err.flag);
        this.respondError(res, err.status, err.message, grpc, state);
      } else if (!abort.signal.aborted) {
        this.deps.logger.warn({ err: describeError(err), path, pod: conn.podKey }, 'request failed');
        this.respondError(res, 502, describeError(err), grpc, state);
      }
    } finally {
      this.report(conn, config, method, path, grpc, state, requestId, trace.traceparent, req);
    }
  }

  private peerWorkload(config: ProxyConfig, address: string): WorkloadInfo | undefined {
    const ip = address.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
    const pod = config.snapshot.podByIP(ip);
    return pod ? config.workload(pod) : undefined;
  }

  private async sendWithRetries(
    req: Req,
    res: Res,
    conn: ConnectionInfo,
    config: ProxyConfig,
    request: { method: string; path: string; authority: string; headers: HeaderRecord; grpc: boolean },
    targetService: ServiceInfo | undefined,
    targetPort: number,
    policy: ServicePolicy | undefined,
    match: RouteMatch | undefined,
    state: RequestState,
    abort: AbortController,
  ): Promise<void> {
    const retry = match?.retry;
    const maxRetries = retry ? retry.attempts : DEFAULT_CONNECT_RETRIES;
    const mirrors = match?.mirrors.filter((m) => shouldMirror(m, this.random)) ?? [];
    const needBuffer = (retry !== undefined && retry.attempts > 0) || mirrors.length > 0;
    const body = await this.requestBody(req, needBuffer, state);
    const resendable = Buffer.isBuffer(body) || body === undefined;
    const idempotent = isIdempotent(request.method);
    const budget = targetService ? this.deps.config.retryBudget(`${targetService.namespace}/${targetService.name}`) : undefined;
    budget?.recordRequest();

    const requestTimeout = match?.timeouts.requestMs;
    const perAttempt = match?.timeouts.backendRequestMs;
    let requestTimer: NodeJS.Timeout | undefined;
    if (requestTimeout) {
      requestTimer = setTimeout(() => {
        state.flags.push('UT');
        abort.abort(new ProxyResponseError(504, 'UT', `request timeout ${requestTimeout} ms`));
      }, requestTimeout);
    }
    const family = isIPv6(conn.original.address) ? 6 : 4;
    try {
      for (let attempt = 0; ; attempt++) {
        const target = this.pickTarget(config, conn, targetService, targetPort, family, policy, request.headers);
        if (!target) throw new ProxyResponseError(503, 'UH', `no healthy upstream for ${targetService ? `${targetService.namespace}/${targetService.name}` : conn.original.address}:${targetPort}`);
        state.attempts = attempt + 1;
        state.upstreamHost = target.key;
        if (target.endpoint?.podKey) {
          const pod = config.snapshot.pods.get(target.endpoint.podKey);
          if (pod) state.destWorkload = config.workload(pod);
        } else {
          const pod = config.snapshot.podByIP(target.address);
          if (pod) state.destWorkload = config.workload(pod);
        }
        // Only a per-attempt timeout needs a signal of its own; otherwise the request's
        // signal (client gone, request timeout) serves the attempt, one controller less
        // per request in the hot path.
        const attemptAbort = perAttempt ? new AbortController() : undefined;
        const attemptSignal = attemptAbort?.signal ?? abort.signal;
        const onAbort = () => attemptAbort?.abort();
        if (attemptAbort) abort.signal.addEventListener('abort', onAbort, { once: true });
        let attemptTimer: NodeJS.Timeout | undefined;
        let timedOut = false;
        if (attemptAbort) attemptTimer = setTimeout(() => { timedOut = true; attemptAbort.abort(); }, perAttempt);
        const startedAttempt = performance.now();
        const lbEp = { key: target.key };
        policy?.lb.onStart(lbEp);
        let response: UpstreamResponse | undefined;
        let failure: unknown;
        try {
          const transport = this.deps.transportFor(conn, target);
          const attemptReq: AttemptRequest = { ...request, body: resendable ? body : (body as Readable), signal: attemptSignal };
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
          (status !== undefined && retry?.codes.includes(status)) || connectFailed || (timedOut && retry !== undefined);
        const canRetry = retryable && attempt < maxRetries && resendable && (idempotent || connectFailed || retry !== undefined) && !abort.signal.aborted;
        if (canRetry && (connectFailed && !retry ? true : budget?.tryRetry() ?? true)) {
          policy?.lb.onEnd(lbEp, latency, false);
          clearTimeout(attemptTimer);
          abort.signal.removeEventListener('abort', onAbort);
          response?.body.resume();
          if (retry?.backoffMs) await sleep(retry.backoffMs * 2 ** attempt, abort.signal);
          continue;
        }
        if (canRetry) state.flags.push('URX');
        if (!response) {
          policy?.lb.onEnd(lbEp, latency, false);
          clearTimeout(attemptTimer);
          if (abort.signal.aborted) {
            const reason = abort.signal.reason;
            if (reason instanceof ProxyResponseError) throw reason;
            return;
          }
          if (timedOut) throw new ProxyResponseError(504, 'UT', `upstream request timeout ${perAttempt} ms`);
          if (connectFailed) throw new ProxyResponseError(503, 'UF', `upstream connect error: ${describeError(failure)}`);
          throw new ProxyResponseError(503, 'UC', `upstream connection error: ${describeError(failure)}`);
        }
        for (const m of mirrors) this.mirror(config, conn, m.backend.serviceKey, m.backend.port, request, body as Buffer | undefined, family);
        try {
          await this.relayResponse(res, response, match, state, attemptSignal);
          policy?.lb.onEnd(lbEp, latency, response.status < 500);
        } finally {
          clearTimeout(attemptTimer);
          abort.signal.removeEventListener('abort', onAbort);
        }
        if (timedOut && !res.headersSent) throw new ProxyResponseError(504, 'UT', `upstream request timeout ${perAttempt} ms`);
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
    const eps = config.snapshot.endpointsFor(svc, servicePort, { family }).filter((e) => e.ready && !e.terminating);
    const candidates = eps.map((e) => ({ key: endpointKey(e.address, e.port), endpoint: e }));
    const chosen = policy ? policy.pick(candidates, { hashKey: policy.hashKey((n) => headers[n]) }) : candidates[Math.floor(this.random() * candidates.length)];
    if (!chosen) return undefined;
    return { key: chosen.key, address: chosen.endpoint.address, port: chosen.endpoint.port, endpoint: chosen.endpoint };
  }

  /**
   * The request body: undefined (none), a Buffer (read whole, to resend), or a stream.
   * Counts its bytes into `state`. Nothing here may read the request before whoever sends
   * it upstream is attached: a 'data' listener would start the flow and lose the chunks
   * that arrive while the upstream connection is still being made.
   */
  private async requestBody(req: Req, buffer: boolean, state: RequestState): Promise<Buffer | Readable | undefined> {
    const counted = (source: Readable): Readable => {
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          state.requestBytes += chunk.length;
          done(null, chunk);
        },
      });
      pipeline(source, counter, () => undefined);
      return counter;
    };
    const method = req.method ?? 'GET';
    const length = Number(single(req.headers['content-length']) ?? NaN);
    const chunked = req.headers['transfer-encoding'] !== undefined || (req.httpVersionMajor === 2 && !Number.isFinite(length) && method !== 'GET' && method !== 'HEAD');
    if (!chunked && (!Number.isFinite(length) || length === 0)) {
      if (req.httpVersionMajor !== 2 || method === 'GET' || method === 'HEAD') return undefined;
    }
    if (!buffer || (Number.isFinite(length) && length > MAX_BUFFERED_BODY)) {
      // With a Content-Length (the common case) the count is known without a counting
      // stream in the hot path; only chunked bodies are counted as they pass.
      if (!chunked && Number.isFinite(length)) {
        state.requestBytes += length;
        return req as Readable;
      }
      return counted(req as Readable);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BUFFERED_BODY) {
        // Too big to keep: send what we have followed by the rest, without retries.
        state.requestBytes += size;
        return Readable.from((async function* () { yield* chunks; yield chunk; yield* counted(req as Readable) as AsyncIterable<Buffer>; })());
      }
      chunks.push(chunk);
    }
    state.requestBytes += size;
    return Buffer.concat(chunks);
  }

  private async relayResponse(res: Res, up: UpstreamResponse, match: RouteMatch | undefined, state: RequestState, signal: AbortSignal): Promise<void> {
    const headers = responseHeaders(up.headers);
    if (match?.responseHeaderModifier) applyHeaderModifier(headers as HeaderRecord, match.responseHeaderModifier);
    state.responseCode = up.status;
    const grpcHeader = single(up.headers['grpc-status'] as string | string[] | undefined);
    if (grpcHeader !== undefined) state.grpcStatus = Number(grpcHeader);
    // A gRPC "Trailers-Only" response (one HEADERS frame carrying grpc-status, END_STREAM)
    // cannot be written as such through the compatibility API, which always sends the
    // response headers first: send its status as trailers, which gRPC clients read the
    // same way (they ignore a grpc-status in the leading headers without END_STREAM).
    const isGrpc = String(single(up.headers['content-type'] as string | string[] | undefined) ?? '').startsWith('application/grpc');
    const trailersOnly = grpcHeader !== undefined && isGrpc ? takeGrpcStatus(headers as HeaderRecord) : undefined;
    res.writeHead(up.status, headers as Record<string, string | string[]>);
    await new Promise<void>((resolve) => {
      const onAbort = () => { up.body.destroy(); res.destroy(); resolve(); };
      signal.addEventListener('abort', onAbort, { once: true });
      up.body.on('data', (c: Buffer) => {
        state.responseBytes += c.length;
        // Back-pressure: stop reading upstream while the client is slow.
        if (!(res as ServerResponse).write(c)) {
          up.body.pause();
          (res as ServerResponse).once('drain', () => up.body.resume());
        }
      });
      const onEnd = () => {
        signal.removeEventListener('abort', onAbort);
        up.trailers.then((t) => {
          const trailers = { ...trailersOnly, ...responseHeaders(t) };
          const gs = single(t['grpc-status'] as string | string[] | undefined);
          if (gs !== undefined) state.grpcStatus = Number(gs);
          if (Object.keys(trailers).length > 0) res.addTrailers(trailers as Record<string, string>);
          res.end();
          resolve();
        });
      };
      // A response without a body (an HTTP/2 HEADERS frame with END_STREAM, such as a
      // gRPC trailers-only error) may have ended before we got here: 'end' will not come.
      if (up.body.readableEnded) onEnd();
      else up.body.once('end', onEnd);
      up.body.once('error', () => {
        signal.removeEventListener('abort', onAbort);
        state.flags.push('UC');
        res.destroy();
        resolve();
      });
    });
  }

  private mirror(config: ProxyConfig, conn: ConnectionInfo, serviceKey: string, port: number, request: { method: string; path: string; authority: string; headers: HeaderRecord; grpc: boolean }, body: Buffer | undefined, family: 4 | 6): void {
    const svc = config.snapshot.service(serviceKey);
    if (!svc) return;
    const target = this.pickTarget(config, conn, svc, port, family, this.deps.config.policies.forService(serviceKey), request.headers);
    if (!target) return;
    const signal = AbortSignal.timeout(30_000);
    const headers = { ...request.headers };
    // Istio/Envoy mark shadow traffic by suffixing the authority with -shadow.
    const authority = request.authority ? `${request.authority.replace(/(:\d+)?$/, '-shadow$1')}` : request.authority;
    const transport = this.deps.transportFor(conn, target);
    const mirrored: AttemptRequest = { ...request, authority, headers, body, signal };
    const sent = request.grpc
      ? forwardH2(this.deps.sessions, transport, target.address, target.port, mirrored)
      : forwardHttp1(this.deps.pools, transport, target.address, target.port, mirrored);
    sent.then(
      (r) => r.body.resume(),
      (err: unknown) => this.deps.logger.debug({ err: describeError(err), mirror: serviceKey }, 'mirror request failed'),
    );
  }

  private respondGrpcStatus(res: Res, code: number, message: string): void {
    if (res.headersSent) { res.destroy(); return; }
    res.writeHead(200, { 'content-type': 'application/grpc' });
    // In trailers: see relayResponse (a grpc-status in the leading headers is not read).
    res.addTrailers({ 'grpc-status': String(code), 'grpc-message': encodeURIComponent(message) });
    res.end();
  }

  private respondError(res: Res, status: number, message: string, grpc: boolean, state: RequestState): void {
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    state.responseCode = grpc ? 200 : status;
    if (grpc) {
      // gRPC clients read failures from grpc-status (HTTP status 200, trailers-only).
      const code = status === 429 || status === 503 ? 14 : status === 504 ? 4 : status === 404 ? 12 : 13;
      state.grpcStatus = code;
      this.respondGrpcStatus(res, code, message);
      return;
    }
    const body = `${message}\n`;
    state.responseBytes = Buffer.byteLength(body);
    res.writeHead(status, { 'content-type': 'text/plain', 'content-length': String(state.responseBytes), 'x-nodemesh-flags': [...new Set(state.flags)].join(',') || '-' });
    res.end(body);
  }

  private report(conn: ConnectionInfo, config: ProxyConfig, method: string, path: string, grpc: boolean, state: RequestState, requestId: string, traceparent: string, req: Req): void {
    const durationMs = performance.now() - state.started;
    const flags = state.flags.length ? [...new Set(state.flags)].join(',') : '-';
    const source = conn.direction === 'outbound' && conn.pod ? config.workload(conn.pod) : this.peerWorkload(config, conn.sourceAddress);
    const destination = conn.direction === 'inbound' && conn.pod ? config.workload(conn.pod) : state.destWorkload;
    const svc = state.destService;
    const destinationService = svc ? { name: svc.name, namespace: svc.namespace, host: `${svc.name}.${svc.namespace}.svc.cluster.local` } : undefined;
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
      requestBytes: state.requestBytes,
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
      bytesReceived: state.requestBytes,
      bytesSent: state.responseBytes,
      attempts: Math.max(1, state.attempts),
      method,
      path,
      protocol: conn.protocol === 'h2' ? 'HTTP/2' : 'HTTP/1.1',
      responseCode: state.responseCode,
      ...(state.grpcStatus !== undefined ? { grpcStatus: state.grpcStatus } : {}),
      requestId,
      traceparent,
      ...(req.headers['user-agent'] ? { userAgent: String(req.headers['user-agent']) } : {}),
    });
  }
}
