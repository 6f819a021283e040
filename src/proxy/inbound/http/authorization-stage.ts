import { authorizeRequest } from '../../authz/authorize-request';
import { RESPONDED, type HttpStage, type StageOutcome } from '../../http/staged-pipeline';
import type { InboundRequest, InboundStageDeps } from './inbound-request';

/**
 * Server-side authorization of each request, before the app sees it: the connection's
 * proved principal (or none: plaintext) and peer address, the pod and port it is for,
 * and the request's method, path, host and headers.
 */
export class AuthorizationStage implements HttpStage<InboundRequest> {
  readonly name = 'authorization';

  constructor(private readonly deps: Pick<InboundStageDeps, 'metrics'>) {}

  run(req: InboundRequest): StageOutcome {
    const { conn, config, ex, state } = req;
    const allowed = authorizeRequest(this.deps, config, {
      destination: conn.pod!,
      target: conn.original,
      sourcePrincipal: conn.peer?.principal,
      sourceAddress: conn.sourceAddress,
      method: req.method,
      path: req.path,
      authority: req.authority,
      headers: req.headers,
    }, ex, req.grpc, state);
    return allowed ? undefined : RESPONDED;
  }
}
