import { NodemeshError } from '../errors';
import { podKey } from '../mesh/model';
import { needsL7, type AuthzDecision } from '../policy/server/authorization/evaluate';
import type { CompiledPolicy } from '../policy/server/authorization/model';
import { authorize, authzDestination } from './authz-request';
import type { ProxyConfig } from './proxy-config';

/**
 * `nodemesh authz check`: what the proxy would decide for a connection or a request from
 * one pod to another, from the configuration in force (as `istioctl x authz check` reads
 * the proxy's), built with the same request builder and evaluator the proxy enforces
 * with. A source pod in the mesh (ambient or sidecar) proves its service account over
 * mutual TLS; one outside the mesh arrives as plaintext with no principal.
 */

export interface AuthzCheckQuery {
  /** namespace/name of the calling pod. */
  from: string;
  /** namespace/name of the destination pod. */
  to: string;
  /** The destination pod's port; default its first container port. */
  port?: number;
  /** Given with `path` (or alone): an HTTP request; neither: a connection (L4). */
  method?: string;
  path?: string;
  /** The authority of the request (default: the destination address and port). */
  host?: string;
  /** Lower-case names. */
  headers?: Record<string, string>;
}

export interface AuthzCheckPolicy {
  kind: string;
  policy: string;
  action: string;
  /** Which workloads it selects: "namespace", "mesh", "selector a=b", "Services x, y". */
  scope: string;
  rules: number;
}

export interface AuthzCheckReply {
  source: { pod: string; principal?: string; ip: string; mtls: boolean; why: string };
  destination: { pod: string; ip: string; port: number; serviceAccount: string; services: string[] };
  request: { layer: 'L4' | 'L7'; method?: string; path?: string; host?: string; headers?: Record<string, string> };
  /** The port's rules have HTTP conditions: the proxy parses HTTP there. */
  portNeedsL7: boolean;
  policies: AuthzCheckPolicy[];
  verdict: AuthzDecision['verdict'];
  decidedBy?: AuthzDecision['decidedBy'];
  audited: AuthzDecision['audited'];
  reason: string;
}

function scopeOf(p: CompiledPolicy, rootNamespace: string): string {
  const s = p.scope;
  if (s.kind === 'services') return `Services ${s.names.join(', ')}`;
  const mesh = s.rootNamespaceIsMesh && p.namespace === rootNamespace;
  if (s.kind === 'all') return mesh ? 'the whole mesh' : `namespace ${p.namespace}`;
  const labels = Object.entries(s.selector.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  const expressions = (s.selector.matchExpressions ?? []).map((e) => `${e.key} ${e.operator}${e.values && e.values.length > 0 ? ` (${e.values.join(', ')})` : ''}`);
  return `${mesh ? 'mesh-wide, ' : ''}selector ${[...labels, ...expressions].join(', ') || '(every pod)'}`;
}

function pod(config: ProxyConfig, key: string, flag: string) {
  const found = config.snapshot.pods.get(key);
  if (!found) {
    throw new NodemeshError('ERR_NM_AUTHZ_CHECK_POD', `${flag} ${key}: no such pod in this agent's configuration; give namespace/name of a running pod (in --kube mode an agent knows its own node's pods and the enrolled pods of other nodes)`);
  }
  return found;
}

export function authzCheck(config: ProxyConfig, q: AuthzCheckQuery): AuthzCheckReply {
  const source = pod(config, q.from, '--from');
  const destination = pod(config, q.to, '--to');
  const port = q.port ?? destination.containerPorts[0]?.port;
  if (port === undefined) throw new NodemeshError('ERR_NM_AUTHZ_CHECK_PORT', `--to ${q.to}: the pod declares no container port; name one as --to ${q.to}:PORT`);
  const mode = config.snapshot.modeDecision(source);
  const inMesh = mode.mode !== 'off';
  const principal = inMesh ? config.workload(source).principal : undefined;
  const destIp = destination.ips[0] ?? '';
  const layer = q.method !== undefined || q.path !== undefined ? 'L7' : 'L4';
  const http = layer === 'L7'
    ? { method: q.method ?? 'GET', path: q.path ?? '/', host: q.host ?? `${destIp.includes(':') ? `[${destIp}]` : destIp}:${port}`, headers: q.headers ?? {} }
    : undefined;
  const decision = authorize(config, { destination, port, destinationIp: destIp, sourcePrincipal: principal, sourceIp: source.ips[0] ?? '', ...(http && { http }) });
  const dest = authzDestination(config, destination);
  return {
    source: { pod: podKey(source), ...(principal && { principal }), ip: source.ips[0] ?? '', mtls: principal !== undefined, why: inMesh ? `in the mesh (${mode.reason}): mutual TLS proves its identity` : `not in the mesh (${mode.reason}): plaintext, no principal` },
    destination: { pod: podKey(destination), ip: destIp, port, serviceAccount: destination.serviceAccount, services: [...(dest.serviceNames ?? [])].sort() },
    request: { layer, ...(http && { method: http.method, path: http.path, host: http.host, headers: http.headers }) },
    portNeedsL7: needsL7(config.authorization, dest, port),
    policies: config.authorization.applicableTo(dest).map((p) => ({ kind: p.kind, policy: `${p.namespace}/${p.name}`, action: p.action, scope: scopeOf(p, config.authorization.rootNamespace), rules: p.rules.length })),
    verdict: decision.verdict,
    ...(decision.decidedBy && { decidedBy: decision.decidedBy }),
    audited: decision.audited,
    reason: decision.reason,
  };
}

/** The admin route's query (`/debug/authz?from=&to=&port=&method=&path=&host=&header=k=v`). */
export function authzCheckQuery(params: URLSearchParams): AuthzCheckQuery {
  const from = params.get('from');
  const to = params.get('to');
  if (!from || !to) throw new NodemeshError('ERR_NM_AUTHZ_CHECK_ARGS', 'give from=NAMESPACE/POD and to=NAMESPACE/POD');
  const q: AuthzCheckQuery = { from, to };
  const port = params.get('port');
  if (port !== null) {
    const n = Number(port);
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new NodemeshError('ERR_NM_AUTHZ_CHECK_PORT', `port ${port} is not a port number from 1 to 65535`);
    q.port = n;
  }
  for (const k of ['method', 'path', 'host'] as const) {
    const v = params.get(k);
    if (v !== null) q[k] = v;
  }
  const headers = params.getAll('header');
  if (headers.length > 0) {
    q.headers = {};
    for (const h of headers) {
      const eq = h.indexOf('=');
      if (eq <= 0) throw new NodemeshError('ERR_NM_AUTHZ_CHECK_ARGS', `header "${h}" is not NAME=VALUE`);
      q.headers[h.slice(0, eq).toLowerCase()] = h.slice(eq + 1);
    }
  }
  return q;
}
