import { serviceHost } from '../../mesh/model';
import type { AccessLog } from '../../telemetry/access-log';
import type { IstioMetrics } from '../../telemetry/istio-metrics';
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
 * connection proved (`conn.peer`).
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
    const { conn, config, ex, state, method, path, grpc } = req;
    const durationMs = performance.now() - state.started;
    const flags = state.flags.length ? [...new Set(state.flags)].join(',') : '-';
    const inbound = conn.direction === 'inbound';
    const source = inbound ? conn.peer?.workload : conn.pod ? config.workload(conn.pod) : undefined;
    // Source side: how the destination received it is not known here (Istio: "unknown").
    const mtls = inbound ? conn.peer?.principal !== undefined : undefined;
    const destination = conn.direction === 'inbound' && conn.pod ? config.workload(conn.pod) : state.destWorkload;
    const svc = state.destService;
    const destinationService = svc ? { name: svc.name, namespace: svc.namespace, host: serviceHost(svc) } : undefined;
    this.metrics.recordRequest({
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
      ...(mtls !== undefined ? { mtls } : {}),
    });
    this.accessLog?.http({
      startTime: state.startedAt,
      durationMs,
      reporter: conn.direction === 'outbound' ? 'source' : 'destination',
      ...(source ? { source } : {}),
      sourceAddress: conn.sourceAddress,
      ...(mtls !== undefined ? { mtls } : {}),
      ...(destination ? { destination } : {}),
      ...(destinationService ? { destinationService: destinationService.host } : {}),
      ...(state.upstreamHost ? { upstreamHost: state.upstreamHost } : {}),
      ...(state.route ? { route: state.route } : {}),
      responseFlags: flags,
      ...(state.details ? { details: state.details } : {}),
      ...(state.audited ? { audited: state.audited } : {}),
      bytesReceived: ex.bodyBytesRead,
      bytesSent: state.responseBytes,
      attempts: Math.max(1, state.attempts),
      method,
      path,
      protocol: conn.protocol === 'h2' ? 'HTTP/2' : 'HTTP/1.1',
      responseCode: state.responseCode,
      ...(state.grpcStatus !== undefined ? { grpcStatus: state.grpcStatus } : {}),
      requestId: req.requestId,
      traceparent: req.traceparent,
      ...(ex.headers['user-agent'] ? { userAgent: String(ex.headers['user-agent']) } : {}),
    });
  }
}
