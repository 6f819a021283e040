import { describeError } from '../../../errors';
import { connectIn } from '../../connect';
import { forwardH2, forwardHttp1 } from '../../http/forward';
import { ProxyResponseError } from '../../http/proxy-response-error';
import { relayResponse } from '../../http/relay-response';
import type { HttpStage } from '../../http/staged-pipeline';
import type { LocalPod } from '../../local-pods';
import { formatAddress } from '../../open-socket';
import type { UpstreamTransport } from '../../upstream/transport';
import type { InboundRequest, InboundStageDeps } from './inbound-request';

/**
 * Sends an authorized request to the pod's app, over keep-alive connections made in the
 * pod's namespace from 127.0.0.6 (the transport the TCP path uses), in the protocol the
 * client spoke, and relays the response with back-pressure. No retries: the source side
 * retries by its route's policy.
 */
export class DeliverStage implements HttpStage<InboundRequest> {
  readonly name = 'deliver';
  private readonly transports = new WeakMap<LocalPod, UpstreamTransport>();

  constructor(private readonly deps: InboundStageDeps) {}

  async run(req: InboundRequest): Promise<void> {
    const { conn, ex, headers, state, cancel } = req;
    const local = this.deps.pods.get(conn.podKey);
    if (!local) throw new ProxyResponseError(503, 'UH', `pod ${conn.podKey} is no longer enrolled on this node`);
    const target = conn.original;
    state.upstreamHost = formatAddress(target);
    state.attempts = 1;
    const authority = typeof headers['host'] === 'string' ? headers['host'] : req.authority;
    if (headers['host'] !== undefined) delete headers['host'];
    const attempt = { method: req.method, path: req.path, authority, headers, body: ex.body, contentLength: ex.contentLength, cancel };
    const transport = this.transportFor(local);
    let response;
    try {
      response = conn.protocol === 'h2'
        ? await forwardH2(this.deps.sessions, transport, target.address, target.port, attempt)
        : await forwardHttp1(this.deps.pools, transport, target.address, target.port, attempt);
    } catch (err) {
      if (cancel.cancelled) return;
      throw new ProxyResponseError(503, 'UF', `the app of ${conn.podKey} did not answer: ${describeError(err)}`);
    }
    await relayResponse(ex, response, undefined, state, cancel);
  }

  private transportFor(local: LocalPod): UpstreamTransport {
    let t = this.transports.get(local);
    if (!t) {
      t = { kind: 'local', key: `local:${local.key}`, open: (target, timeoutMs) => connectIn(local.network, target, timeoutMs, true) };
      this.transports.set(local, t);
    }
    return t;
  }
}
