import { serviceHost } from '../../mesh/model';
import type { AccessLog } from '../../telemetry/access-log';
import type { DestinationServiceInfo, IstioMetrics } from '../../telemetry/istio-metrics';
import { reporterForLeg, type Reporter } from '../../telemetry/reporter';
import type { WorkloadInfo } from '../../mesh/workload-identity';
import { ensureRequestId, ensureTraceContext } from '../../telemetry/trace-context';
import type { HeaderRecord } from './headers';
import type { HttpStage, StageContext } from './staged-pipeline';
import type { DownstreamExchange } from './exchange';
import type { ConnectionInfo } from '../connection-info';
import type { ProxyConfig } from '../proxy-config';
import { newRequestState } from './request-state';
import { Cancellation } from './cancellation';

/** What the telemetry stage reads and sets, in either direction's pipeline. */
export interface TelemetryContext extends StageContext {
  readonly headers: HeaderRecord;
  requestId: string;
  traceparent: string;
}

/**
 * The fields every pipeline's request starts with, from the exchange: what both
 * directions' requests (outbound-request.ts, inbound-request.ts) are built on.
 */
export function newTelemetryContext(ex: DownstreamExchange, conn: ConnectionInfo, config: ProxyConfig): TelemetryContext & { authority: string } {
  const contentType = ex.headers['content-type'];
  return {
    ex,
    conn,
    config,
    state: newRequestState(),
    cancel: new Cancellation(),
    method: ex.method,
    grpc: typeof contentType === 'string' && contentType.startsWith('application/grpc'),
    path: ex.path,
    headers: ex.headers,
    authority: ex.authority,
    requestId: '',
    traceparent: '',
  };
}

/**
 * First in, last out: gives the request its id and trace context before anything else
 * sees it, and when the request is over, records the Istio metrics and the access log
 * line from what the other stages decided. Outbound it reports as the source (the pod
 * that sent the request); inbound as the destination, the source being who the
 * connection proved (`conn.peer`). An outbound request handed over in-process to a pod of
 * this node is also reported as the destination, once per attempt that reached the pod
 * (`state.handOvers`): that pass was both proxies (src/telemetry/reporter.ts).
 */
export class TelemetryStage<C extends TelemetryContext> implements HttpStage<C> {
  readonly name = 'telemetry';

  constructor(private readonly metrics: IstioMetrics, private readonly accessLog: AccessLog | undefined) {}

  run(req: C): void {
    const { headers } = req;
    req.requestId = ensureRequestId(headers).requestId;
    headers['x-request-id'] = req.requestId;
    req.traceparent = ensureTraceContext(headers).traceparent;
    headers['traceparent'] = req.traceparent;
  }

  finish(req: C): void {
    const { conn, config, state } = req;
    const durationMs = performance.now() - state.started;
    const inbound = conn.direction === 'inbound';
    const source = inbound ? conn.peer?.workload : conn.pod ? config.workload(conn.pod) : undefined;
    const svc = state.destService ?? (inbound ? conn.service : undefined);
    const destinationService = svc ? { name: svc.name, namespace: svc.namespace, host: serviceHost(svc) } : undefined;
    this.report(req, {
      reporter: reporterForLeg(conn.direction),
      source,
      destination: inbound && conn.pod ? config.workload(conn.pod) : state.destWorkload,
      destinationService,
      // Inbound: what the connection proved (a tunnel stream's certificate). Outbound: how
      // the last attempt went (the tunnel: mutual TLS); nothing sent: not known.
      mtls: inbound ? conn.peer?.principal !== undefined : state.upstreamMtls,
      flags: state.flags.length ? [...new Set(state.flags)].join(',') : '-',
      durationMs,
      responseCode: state.responseCode,
      grpcStatus: state.grpcStatus,
      responseBytes: state.responseBytes,
      upstreamHost: state.upstreamHost,
      attempts: Math.max(1, state.attempts),
    });
    // The same-node hand-over: this pass was the destination's proxy too (reporter.ts).
    if (state.handOvers) {
      for (const h of state.handOvers) {
        this.report(req, {
          reporter: 'destination',
          source,
          destination: h.destination,
          destinationService,
          mtls: h.mtls,
          flags: h.ended ? h.ended.flags : destinationFlags(state.flags),
          durationMs: h.ended ? h.ended.durationMs : performance.now() - h.started,
          responseCode: h.ended ? h.ended.responseCode : state.responseCode,
          grpcStatus: h.ended ? undefined : state.grpcStatus,
          responseBytes: h.ended ? 0 : state.responseBytes,
          upstreamHost: h.upstreamHost,
          attempts: 1,
        });
      }
    }
  }

  /** One leg's metrics and access-log line. */
  private report(req: C, leg: Leg): void {
    const { conn, ex, state, method, path, grpc } = req;
    const { source, destination, destinationService, mtls, grpcStatus, upstreamHost } = leg;
    this.metrics.recordRequest({
      reporter: leg.reporter,
      ...(source ? { source } : {}),
      ...(destination ? { destination } : {}),
      ...(destinationService ? { destinationService } : {}),
      protocol: grpc ? 'grpc' : 'http',
      responseCode: leg.responseCode,
      ...(grpcStatus !== undefined ? { grpcStatus } : {}),
      responseFlags: leg.flags,
      durationMs: leg.durationMs,
      requestBytes: ex.bodyBytesRead,
      responseBytes: leg.responseBytes,
      ...(mtls !== undefined ? { mtls } : {}),
    });
    this.accessLog?.http({
      startTime: state.startedAt,
      durationMs: leg.durationMs,
      reporter: leg.reporter,
      ...(source ? { source } : {}),
      sourceAddress: conn.sourceAddress,
      ...(mtls !== undefined ? { mtls } : {}),
      ...(destination ? { destination } : {}),
      ...(destinationService ? { destinationService: destinationService.host } : {}),
      ...(upstreamHost ? { upstreamHost } : {}),
      ...(state.route ? { route: state.route } : {}),
      responseFlags: leg.flags,
      ...(state.details ? { details: state.details } : {}),
      ...(state.audited ? { audited: state.audited } : {}),
      bytesReceived: ex.bodyBytesRead,
      bytesSent: leg.responseBytes,
      attempts: leg.attempts,
      method,
      path,
      protocol: conn.protocol === 'h2' ? 'HTTP/2' : 'HTTP/1.1',
      responseCode: leg.responseCode,
      ...(grpcStatus !== undefined ? { grpcStatus } : {}),
      requestId: req.requestId,
      traceparent: req.traceparent,
      ...(ex.headers['user-agent'] ? { userAgent: String(ex.headers['user-agent']) } : {}),
    });
  }
}

/** What one reporter says about a request. */
interface Leg {
  reporter: Reporter;
  source: WorkloadInfo | undefined;
  destination: WorkloadInfo | undefined;
  destinationService: DestinationServiceInfo | undefined;
  mtls: boolean | undefined;
  flags: string;
  durationMs: number;
  responseCode: number;
  grpcStatus: number | undefined;
  responseBytes: number;
  upstreamHost: string | undefined;
  attempts: number;
}

/**
 * The flags a destination's proxy would have set for the attempt it served: the client
 * went away (DC), the app's connection failed (UF) or broke (UC). The source's own
 * (routing, retries, limits, faults, timeouts) are not the destination's.
 */
const DESTINATION_FLAGS = new Set(['DC', 'UF', 'UC']);
function destinationFlags(flags: readonly string[]): string {
  const kept = [...new Set(flags.filter((f) => DESTINATION_FLAGS.has(f)))];
  return kept.length ? kept.join(',') : '-';
}
