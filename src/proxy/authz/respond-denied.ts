import type { DownstreamExchange } from '../http/exchange';
import type { RequestState } from '../http/request-state';
import { respondGrpcStatus } from '../http/respond';
import { GRPC_PERMISSION_DENIED, RBAC_DENIED_BODY } from './denial';

const BODY = Buffer.from(RBAC_DENIED_BODY);

/** The answer to a denied request, as Envoy's RBAC filter gives it: 403 with its text, or for gRPC status 7 (HTTP 200). */
export function respondDenied(ex: DownstreamExchange, grpc: boolean, state: RequestState): void {
  if (ex.headersSent || ex.closed) {
    ex.destroy();
    return;
  }
  if (grpc) {
    state.responseCode = 200;
    state.grpcStatus = GRPC_PERMISSION_DENIED;
    respondGrpcStatus(ex, GRPC_PERMISSION_DENIED, RBAC_DENIED_BODY);
    return;
  }
  state.responseCode = 403;
  state.responseBytes = BODY.length;
  ex.writeHead(403, { 'content-type': 'text/plain', 'content-length': String(BODY.length) });
  ex.write(BODY);
  ex.end();
}
