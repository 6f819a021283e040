import { describeError } from '../../../errors';
import { Cancellation } from '../../http/cancellation';
import type { AttemptRequest } from '../../http/forward';
import { mirrorAllowed } from './local-authorization';
import type { OutboundRequest, OutboundStageDeps } from './outbound-request';
import type { TargetPicker } from './pick-target';
import { sendAttempt, type UpstreamRequestHead } from './upstream-request';

/** A mirrored request may take this long before it is cancelled (nobody waits for it). */
const MIRROR_TIMEOUT_MS = 30_000;

/**
 * Sends a copy of the request to a mirror backend, fire-and-forget: its response is read
 * and dropped, its failure only logged. The authority gets Envoy's `-shadow` suffix.
 */
export function mirrorRequest(deps: OutboundStageDeps, picker: TargetPicker, req: OutboundRequest, serviceKey: string, port: number, request: UpstreamRequestHead, body: Buffer | undefined, family: 4 | 6): void {
  const { config, conn } = req;
  const svc = config.snapshot.service(serviceKey);
  if (!svc) return;
  const target = picker.pick(config, conn, svc, port, family, deps.config.policies.forService(serviceKey), request.headers);
  if (!target) return;
  const transport = deps.transportFor(conn, target);
  const pod = target.endpoint?.podKey ? config.snapshot.pods.get(target.endpoint.podKey) : config.snapshot.podByIP(target.address);
  if (!mirrorAllowed(deps.authz, req, request, transport, pod, target)) return;
  const cancel = new Cancellation();
  const timer = setTimeout(() => cancel.cancel(), MIRROR_TIMEOUT_MS).unref();
  const headers = { ...request.headers };
  // Istio/Envoy mark shadow traffic by suffixing the authority with -shadow.
  const authority = request.authority ? `${request.authority.replace(/(:\d+)?$/, '-shadow$1')}` : request.authority;
  const mirrored: AttemptRequest = { method: request.method, path: request.path, authority, headers, body, contentLength: body?.length, cancel };
  sendAttempt(request.grpc, { h1: deps.pools, h2: deps.sessions }, transport, target, mirrored).then(
    (r) => {
      if (!r.body) return clearTimeout(timer);
      r.body.start({ write: () => true, end: () => clearTimeout(timer), fail: () => clearTimeout(timer) });
    },
    (err: unknown) => {
      clearTimeout(timer);
      deps.logger.debug({ err: describeError(err), mirror: serviceKey }, 'mirror request failed');
    },
  );
}
