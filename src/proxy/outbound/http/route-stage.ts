import { cachedServiceKey } from '../../../mesh/model';
import { applyHeaderModifier, applyUrlRewrite, pickWeighted, redirectLocation, type RouteMatch } from '../../../routing';
import { ProxyResponseError } from '../../http/proxy-response-error';
import { RESPONDED, type HttpStage, type StageOutcome } from '../../http/staged-pipeline';
import type { OutboundRequest } from './outbound-request';

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

/**
 * Gateway API routing: the Service the app asked for, the route rule that matches the
 * request (404 NR when the Service has routes and none matches), a redirect answered
 * here, else a weighted backend, with the rule's header filters and URL rewrite applied.
 * A request to a pod IP (no Service) goes on unrouted to its original destination.
 */
export class RouteStage implements HttpStage<OutboundRequest> {
  readonly name = 'route';

  constructor(private readonly random: () => number) {}

  run(req: OutboundRequest): StageOutcome {
    const { config, conn, ex, headers, method, path, authority, state } = req;
    const svc = config.snapshot.serviceByClusterIP(conn.original.address, conn.original.port);
    if (!svc?.port) return;
    const routes = config.routes.forService(cachedServiceKey(svc.service), svc.port.port, req.grpc ? 'grpc' : 'http', conn.pod?.namespace);
    const match = routes?.match({ method, path, headers });
    if (routes && !match) throw new ProxyResponseError(404, 'NR', `no route of ${svc.service.namespace}/${svc.service.name} matches ${method} ${path}`);
    req.match = match;
    state.route = match ? routeName(match) : undefined;
    if (!match) {
      req.targetService = svc.service;
      req.targetPort = svc.port.port;
      state.destService = svc.service;
      return;
    }
    if (match.redirect) {
      const r = redirectLocation({ path, host: authority, scheme: 'http', port: svc.port.port }, match);
      ex.writeHead(r.status, { location: r.location, 'content-length': '0' });
      ex.end();
      state.responseCode = r.status;
      return RESPONDED;
    }
    const backend = pickWeighted(match.backends, this.random);
    if (!backend || backend.unresolved) {
      throw new ProxyResponseError(500, 'NR', backend?.unresolved ?? `route ${match.routeKey} rule ${match.ruleIndex} has no backends`);
    }
    req.targetService = config.snapshot.service(backend.serviceKey);
    req.targetPort = backend.port;
    state.destService = req.targetService;
    if (match.requestHeaderModifier) applyHeaderModifier(headers, match.requestHeaderModifier);
    if (backend.requestHeaderModifier) applyHeaderModifier(headers, backend.requestHeaderModifier);
    if (match.urlRewrite) {
      const rewritten = applyUrlRewrite({ path, host: authority }, match);
      req.path = rewritten.path;
      if (rewritten.host !== authority) headers['host'] = rewritten.host;
    }
  }
}
