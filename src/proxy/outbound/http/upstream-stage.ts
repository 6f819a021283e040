import { describeError, hasCode } from '../../../errors';
import { respondDenied } from '../../authz/respond-denied';
import { cachedServiceKey, type ServiceInfo } from '../../../mesh/model';
import { isIdempotent, shouldMirror, type RouteMatch } from '../../../routing';
import { collectBody } from '../../http/body-adapters';
import { sleep } from '../../http/cancellation';
import type { BodySource, RequestBody, UpstreamResponse } from '../../http/exchange';
import { RetainedBody } from '../../http/retained-body';
import type { AttemptRequest } from '../../http/forward';
import { ProxyResponseError } from '../../http/proxy-response-error';
import type { HttpStage } from '../../http/staged-pipeline';
import type { ConnectionInfo } from '../../connection-info';
import type { HandOverAttempt, RequestState } from '../../http/request-state';
import type { WorkloadInfo } from '../../../mesh/workload-identity';
import { isConnectFailure } from '../../upstream/transport';
import { authorizeHandOver } from './local-authorization';
import { mirrorRequest } from './mirror';
import type { OutboundRequest, OutboundStageDeps } from './outbound-request';
import { TargetPicker } from './pick-target';
import { relayResponse } from '../../http/relay-response';
import { sendAttempt, type UpstreamRequestHead } from './upstream-request';

/** Bodies up to this size are buffered when a retry or a mirror may need to resend them. */
const MAX_BUFFERED_BODY = 1024 * 1024;
const NO_MIRRORS: RouteMatch['mirrors'] = [];
/** A streamed body's first bytes held for a retry after a refused stream (RetainedBody). */
const MAX_RETAINED_BODY = 64 * 1024;
/** Retries on connection failure when the route configures none (nothing was sent). */
const DEFAULT_CONNECT_RETRIES = 2;

/**
 * Sends the request upstream and relays the response: an endpoint per attempt, over the
 * transport to it, with the route's retries (codes, connect failures, per-try timeout,
 * backoff) within the Service's retry budget, the request timeout, outlier detection and
 * load-balancer feedback, and the route's mirrors.
 */
export class UpstreamStage implements HttpStage<OutboundRequest> {
  readonly name = 'upstream';
  private readonly picker: TargetPicker;

  constructor(private readonly deps: OutboundStageDeps) {
    this.picker = new TargetPicker(deps.random);
  }

  run(req: OutboundRequest): Promise<void> {
    const { headers } = req;
    // The authority upstream: a URL rewrite or a header filter may have set a Host header;
    // it travels as the authority (HTTP/1.1 host line, :authority), never twice.
    const upstreamAuthority = typeof headers['host'] === 'string' ? headers['host'] : req.authority;
    if (headers['host'] !== undefined) delete headers['host'];
    return this.sendWithRetries(req, { method: req.method, path: req.path, authority: upstreamAuthority, headers, grpc: req.grpc });
  }

  private async sendWithRetries(req: OutboundRequest, request: UpstreamRequestHead): Promise<void> {
    const { ex, conn, config, state, cancel, match, policy, targetService, targetPort } = req;
    const retry = match?.retry;
    const maxRetries = retry ? retry.attempts : DEFAULT_CONNECT_RETRIES;
    const mirrors = match && match.mirrors.length > 0 ? match.mirrors.filter((m) => shouldMirror(m, this.deps.random)) : NO_MIRRORS;
    const needBuffer = (retry !== undefined && retry.attempts > 0) || mirrors.length > 0;
    let body: RequestBody = ex.body;
    if (body !== undefined && !Buffer.isBuffer(body) && needBuffer && (ex.contentLength === undefined || ex.contentLength <= MAX_BUFFERED_BODY)) {
      body = await collectBody(body, MAX_BUFFERED_BODY);
    }
    const resendable = body === undefined || Buffer.isBuffer(body);
    // A streamed body is held back until the upstream answers: what a refused stream took
    // can be sent again (connect failures only: the upstream processed nothing).
    const retained = resendable ? undefined : new RetainedBody(body as BodySource, MAX_RETAINED_BODY);
    if (retained) body = retained.first();
    const idempotent = isIdempotent(request.method);
    const budget = targetService ? this.deps.config.retryBudget(cachedServiceKey(targetService)) : undefined;
    budget?.recordRequest();
    const h2 = request.grpc || upstreamIsH2(conn, targetService, targetPort);
    const pools = { h1: this.deps.pools, h2: this.deps.sessions };

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
        const target = this.picker.pick(config, conn, targetService, targetPort, family, policy, request.headers);
        if (!target) throw new ProxyResponseError(503, 'UH', `no healthy upstream for ${targetService ? `${targetService.namespace}/${targetService.name}` : conn.original.address}:${targetPort}`);
        state.attempts = attempt + 1;
        state.upstreamHost = target.key;
        const pod = target.endpoint?.podKey ? config.snapshot.pods.get(target.endpoint.podKey) : config.snapshot.podByIP(target.address);
        if (pod) state.destWorkload = config.workload(pod);
        const transport = this.deps.transportFor(conn, target);
        state.upstreamMtls = transport.mtls === true;
        const handOver = transport.kind === 'local' && pod ? handOverAttempt(state, config.workload(pod), target.key, transport.mtls === true) : undefined;
        if (!authorizeHandOver(this.deps.authz, req, request, transport, pod, target)) return;
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
          const attemptReq: AttemptRequest = { method: request.method, path: request.path, authority: request.authority, headers: request.headers, body, contentLength: ex.contentLength, cancel: attemptCancel };
          response = await sendAttempt(h2, pools, transport, target, attemptReq);
        } catch (err) {
          failure = err;
        }
        const latency = performance.now() - startedAttempt;
        const status = response?.status;
        const connectFailed = failure !== undefined && isConnectFailure(failure);
        policy?.outliers?.record(target.key, status !== undefined ? { status } : { connectFailure: true });
        const retryable =
          (status !== undefined && retry !== undefined && retry.codes.includes(status)) || connectFailed || (timedOut && retry !== undefined);
        const again = retryable && !resendable && connectFailed && attempt < maxRetries && !cancel.cancelled ? retained?.again() : undefined;
        const canRetry = retryable && attempt < maxRetries && (resendable || again !== undefined) && (idempotent || connectFailed || retry !== undefined) && !cancel.cancelled;
        if (canRetry && (connectFailed && !retry ? true : budget?.tryRetry() ?? true)) {
          if (again) body = again;
          // What the destination's proxy would say of this attempt: the app's answer; its
          // app unreachable (503 UF); or the source gave up on it (a per-try timeout: DC).
          if (handOver) handOver.ended = status !== undefined ? { responseCode: status, flags: '-', durationMs: latency } : handOverFailure(connectFailed, latency);
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
          if (handOver) handOver.ended = handOverFailure(connectFailed, latency);
          policy?.lb.onEnd(lbEp, latency, false);
          clearTimeout(attemptTimer);
          child?.detach();
          if (cancel.cancelled) {
            if (cancel.reason instanceof ProxyResponseError) throw cancel.reason;
            return;
          }
          if (timedOut) throw new ProxyResponseError(504, 'UT', `upstream request timeout ${perAttempt} ms`);
          // The destination's node refused the connection (an L4 authorization policy):
          // the client hears it as that node would answer a request, not as a broken upstream.
          if (hasCode(failure, 'ERR_NM_TUNNEL_FORBIDDEN')) {
            state.details = 'rbac_access_denied_by_destination';
            respondDenied(ex, request.grpc, state);
            return;
          }
          if (connectFailed) throw new ProxyResponseError(503, 'UF', `upstream connect error: ${describeError(failure)}`);
          throw new ProxyResponseError(503, 'UC', `upstream connection error: ${describeError(failure)}`);
        }
        retained?.answered();
        for (const m of mirrors) mirrorRequest(this.deps, this.picker, req, m.backend.serviceKey, m.backend.port, request, body as Buffer | undefined, family);
        try {
          await relayResponse(ex, response, match, state, attemptCancel);
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
}

/** Records an attempt handed over in-process: telemetry reports it as the destination too (request-state.ts). */
function handOverAttempt(state: RequestState, destination: WorkloadInfo, upstreamHost: string, mtls: boolean): HandOverAttempt {
  const h: HandOverAttempt = { destination, upstreamHost, mtls, started: performance.now() };
  (state.handOvers ??= []).push(h);
  return h;
}

/** An attempt handed over that got no answer, as the destination's proxy would report it: its app unreachable (503 UF), or the source gave up (DC). */
function handOverFailure(connectFailed: boolean, durationMs: number): NonNullable<HandOverAttempt['ended']> {
  return connectFailed ? { responseCode: 503, flags: 'UF', durationMs } : { responseCode: 0, flags: 'DC', durationMs };
}

/** Upstream protocol for a Service port: HTTP/2 for grpc/h2c appProtocol, HTTP/1.1 for http, else like downstream. */
function upstreamIsH2(conn: ConnectionInfo, svc: ServiceInfo | undefined, port: number): boolean {
  const p = svc?.ports.find((x) => x.port === port);
  const app = (p?.appProtocol ?? '').toLowerCase();
  if (app === 'kubernetes.io/h2c' || app === 'grpc' || app === 'h2c' || app === 'http2') return true;
  if (app === 'http' || app === 'kubernetes.io/http') return false;
  return conn.protocol === 'h2';
}
