import type { DownstreamExchange } from './exchange';
import type { RequestState } from './request-state';

/** A gRPC status as trailers (a grpc-status in the leading headers is not read by clients). */
export function respondGrpcStatus(ex: DownstreamExchange, code: number, message: string): void {
  if (ex.headersSent) { ex.destroy(); return; }
  ex.writeHead(200, { 'content-type': 'application/grpc' });
  ex.end({ 'grpc-status': String(code), 'grpc-message': encodeURIComponent(message) });
}

/**
 * The proxy's own error response: text with the response flags in `x-nodemesh-flags`,
 * or for gRPC the matching grpc-status. A response already begun is cut instead.
 */
export function respondError(ex: DownstreamExchange, status: number, message: string, grpc: boolean, state: RequestState): void {
  if (ex.headersSent || ex.closed) {
    ex.destroy();
    return;
  }
  state.responseCode = grpc ? 200 : status;
  if (grpc) {
    // gRPC clients read failures from grpc-status (HTTP status 200, trailers-only).
    const code = status === 429 || status === 503 ? 14 : status === 504 ? 4 : status === 404 ? 12 : 13;
    state.grpcStatus = code;
    respondGrpcStatus(ex, code, message);
    return;
  }
  const body = Buffer.from(`${message}\n`);
  state.responseBytes = body.length;
  ex.writeHead(status, { 'content-type': 'text/plain', 'content-length': String(body.length), 'x-nodemesh-flags': [...new Set(state.flags)].join(',') || '-' });
  ex.write(body);
  ex.end();
}
