import type { PodInfo } from '../mesh/model';
import { evaluate, type AuthzDecision } from '../policy/server/authorization/evaluate';
import type { AuthzDestination, AuthzHttp, AuthzRequest } from '../policy/server/authorization/request';
import type { ProxyConfig } from './proxy-config';

/**
 * The authorization request for a connection or an HTTP request to a pod of this node,
 * from the configuration in force: the one place that says who the destination is (its
 * namespace, labels, service account, and the Services that select it, for policies
 * whose targetRefs name a Service). Used by the inbound path and the same-node hand-over
 * to enforce, and by `nodemesh authz check` (through the admin API) to explain: both ask
 * the same question, so they give the same answer.
 */

/** An AuthzRequest about a pod of this node, before its destination facts are looked up. */
export type AuthzQuestion = Omit<AuthzRequest, 'destination'> & {
  /** The pod of this node the connection is for. */
  destination: PodInfo;
};

/** Per configuration (one per snapshot, frozen): pod key -> the Services selecting it, found once. */
const selecting = new WeakMap<ProxyConfig, Map<string, Set<string>>>();

/** Names of the Services (in the pod's namespace) whose selector selects the pod. */
export function servicesSelecting(config: ProxyConfig, pod: PodInfo): Set<string> {
  let byPod = selecting.get(config);
  if (!byPod) selecting.set(config, (byPod = new Map()));
  const key = `${pod.namespace}/${pod.name}`;
  const known = byPod.get(key);
  if (known) return known;
  const names = new Set<string>();
  for (const svc of config.snapshot.services.values()) {
    if (svc.namespace !== pod.namespace || !svc.selector) continue;
    const entries = Object.entries(svc.selector);
    if (entries.length > 0 && entries.every(([k, v]) => pod.labels[k] === v)) names.add(svc.name);
  }
  byPod.set(key, names);
  return names;
}

export function authzDestination(config: ProxyConfig, pod: PodInfo): AuthzDestination {
  return { namespace: pod.namespace, labels: pod.labels, serviceAccount: pod.serviceAccount, podName: pod.name, serviceNames: servicesSelecting(config, pod) };
}

export function authzRequest(config: ProxyConfig, q: AuthzQuestion): AuthzRequest {
  return {
    destination: authzDestination(config, q.destination),
    port: q.port,
    ...(q.destinationIp !== undefined && { destinationIp: q.destinationIp }),
    sourcePrincipal: q.sourcePrincipal,
    sourceIp: q.sourceIp,
    ...(q.sni !== undefined && { sni: q.sni }),
    ...(q.http && { http: q.http }),
  };
}

/** The verdict on a question, by the configuration's policies: what every enforcement point and `authz check` ask. */
export function authorize(config: ProxyConfig, q: AuthzQuestion): AuthzDecision {
  return evaluate(config.authorization, authzRequest(config, q));
}

/** The HTTP facts of a parsed request (HTTP/1.1 head or HTTP/2 headers), as authorization matches them. */
export function authzHttp(req: { method: string; path: string; authority: string; headers: AuthzHttp['headers'] }): AuthzHttp {
  return { method: req.method, path: req.path, host: req.authority, headers: req.headers };
}

/** The IP of an "ip:port" / "[ip6]:port" address, as `sourceIp` takes it. */
export function ipOf(address: string): string {
  const end = address.lastIndexOf(':');
  const host = end > 0 && !address.endsWith(']') ? address.slice(0, end) : address;
  return host.startsWith('[') ? host.slice(1, -1) : host;
}
