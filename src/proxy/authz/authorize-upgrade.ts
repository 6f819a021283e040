import type { PendingUpgrade } from '../h1/server-connection';
import { headersFromList } from '../http/headers';
import type { ProxyConfig } from '../proxy-config';
import { decideRequest, type RequestToPod } from './authorize-request';
import { RBAC_DENIED_BODY } from './denial';
import { reportDenial, type DenialSinks } from './report-denial';

/**
 * An Upgrade (WebSocket) or CONNECT into a pod of this node, authorized like a request
 * before it reaches the app, the same on the inbound side and on the same-node hand-over:
 * true when it may go on; denied, it is answered 403 "RBAC: access denied", counted and
 * logged.
 */
export function authorizeUpgrade(sinks: DenialSinks, config: ProxyConfig, to: Omit<RequestToPod, 'method' | 'path' | 'authority' | 'headers'>, upgrade: PendingUpgrade): boolean {
  const { head } = upgrade;
  const decision = decideRequest(config, { ...to, method: head.method, path: head.path, authority: head.authority, headers: headersFromList(head.headers, head.connectionTokens) });
  if (decision.verdict === 'allow') return true;
  reportDenial(sinks, to.destination, decision, 'l7', { source: to.sourceAddress, principal: to.sourcePrincipal, method: head.method, path: head.path, upgrade: true });
  upgrade.refuse(403, decision.reason, RBAC_DENIED_BODY);
  return false;
}
