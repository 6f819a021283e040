import { spawnSync } from 'node:child_process';
import { adminGet } from '../../admin/admin-client';
import { metricSum, samples } from '../../util/prom-text';
import { CLI } from '../harness';
import { applyStep, get, load, type DemoContext } from './context';
import type { AuthzFigures, MetricFigure, MetricsFigures, MtlsFigures, WorkloadIdentity } from './result';
import { FRONTEND_URL } from './traffic-steps';

/** Steps (c), (d) and (e): identities and mTLS, authorization, and the metrics the agents export. */

const REVIEWS_V1 = '10.244.2.11';
const MESH_REQUESTS = 20;

/** (c) Each workload's SPIFFE ID; STRICT refuses plaintext from outside the mesh, the mesh's calls flow. */
export async function mtlsStep(ctx: DemoContext, identities: WorkloadIdentity[]): Promise<MtlsFigures> {
  ctx.out.heading('(c) mTLS: every workload has a SPIFFE identity; PeerAuthentication STRICT refuses plaintext from outside');
  for (const id of identities) ctx.out.line(`${id.pod.padEnd(18)} ${id.node}  ${id.identity}  (certificate until ${id.certificateExpiry ?? '?'})`);
  const m2 = await ctx.node2.metrics();
  // node2 parses the HTTP inside each tunnel stream and reports it as the destination (TCP
  // streams as istio_tcp_*): both count what arrived over mTLS with the caller's SPIFFE ID.
  const fromFrontend = { reporter: 'destination', connection_security_policy: 'mutual_tls', source_principal: 'spiffe://cluster.local/ns/shop/sa/frontend' };
  const mutualTlsStreams = metricSum(m2, 'istio_requests_total', fromFrontend) + metricSum(m2, 'istio_tcp_connections_opened_total', fromFrontend);
  ctx.out.line(`node2 received ${mutualTlsStreams} requests and connections over mTLS with the frontend's certificate (connection_security_policy="mutual_tls"): calls between nodes are already mTLS`);

  const before = await get(ctx, 'shop/outside', `http://${REVIEWS_V1}:8080/`);
  ctx.out.line(`outside (not in the mesh) -> reviews-v1 in plaintext, PERMISSIVE (no policy): ${before.status ?? before.error}`);
  await applyStep(ctx, 'peer-authentication.yaml');
  ctx.out.line('applied steps/peer-authentication.yaml: PeerAuthentication shop/strict, mtls.mode STRICT');
  const refused = await get(ctx, 'shop/outside', `http://${REVIEWS_V1}:8080/`);
  const refusedCount = metricSum(await ctx.node2.metrics(), 'nodemesh_mtls_plaintext_refused_total', { policy: 'shop/strict' });
  ctx.out.line(`outside -> reviews-v1 in plaintext, STRICT: ${refused.status !== undefined ? `answered ${refused.status} (NOT refused)` : `refused (${refused.error})`}; nodemesh_mtls_plaintext_refused_total{policy="shop/strict"} ${refusedCount}`);
  const mesh = await load(ctx, 'shop/loadgen', FRONTEND_URL, MESH_REQUESTS);
  const meshOk = mesh.statuses['200'] ?? 0;
  ctx.out.line(`loadgen -> frontend -> reviews, ratings through the mesh, STRICT: ${meshOk} of ${MESH_REQUESTS} answered 200`);
  return {
    identities,
    mutualTlsStreams,
    plaintextFromOutside: refused.status !== undefined ? { status: refused.status } : { error: refused.error ?? 'error' },
    refusedCount,
    meshOk,
    meshRequests: MESH_REQUESTS,
  };
}

/** (d) An AuthorizationPolicy admits only the frontend to ratings: loadgen gets 403, and `nodemesh authz check` says why. */
export async function authzStep(ctx: DemoContext): Promise<AuthzFigures> {
  ctx.out.heading('(d) Authorization: only the frontend\'s identity may call ratings');
  await applyStep(ctx, 'authorization-policy.yaml');
  ctx.out.line('applied steps/authorization-policy.yaml: ALLOW GET from principal cluster.local/ns/shop/sa/frontend to app=ratings');
  const denied = await get(ctx, 'shop/loadgen', 'http://ratings.shop.svc.cluster.local/');
  ctx.out.line(`loadgen -> ratings: ${denied.status ?? denied.error} ${denied.body ?? ''}`);
  const viaFrontend = await load(ctx, 'shop/loadgen', FRONTEND_URL, MESH_REQUESTS);
  const frontendOk = viaFrontend.backendStatuses.ratings?.['200'] ?? 0;
  ctx.out.line(`loadgen -> frontend -> ratings: ratings answered the frontend 200 for ${frontendOk} of ${MESH_REQUESTS} calls`);
  const args = ['--from', 'shop/loadgen', '--to', 'shop/ratings-1:8080', '--method', 'GET', '--path', '/'];
  ctx.out.line(`$ nodemesh authz check --instance ${ctx.node2.instance} ${args.join(' ')}`);
  const cli = spawnSync(process.execPath, [CLI, 'authz', 'check', '--admin-socket', ctx.node2.socket, ...args], { encoding: 'utf8', timeout: 30_000 });
  const text = `${cli.stdout ?? ''}${cli.status === 0 ? '' : cli.stderr ?? ''}`.trimEnd();
  for (const l of text.split('\n')) ctx.out.line(l.trim() ? `  ${l}` : '');
  const q = new URLSearchParams({ from: 'shop/loadgen', to: 'shop/ratings-1', port: '8080', method: 'GET', path: '/' });
  const reply = await adminGet<{ verdict: string; decidedBy?: { policy: string } }>(ctx.node2.socket, `/debug/authz?${q.toString()}`);
  const deniedCount = metricSum(await ctx.node2.metrics(), 'nodemesh_authz_denied_total', { namespace: 'shop' });
  return {
    denied: { ...(denied.status !== undefined ? { status: denied.status } : {}), ...(denied.body !== undefined ? { body: denied.body } : {}), ...(denied.error ? { error: denied.error } : {}) },
    frontendOk,
    frontendRequests: MESH_REQUESTS,
    check: { verdict: reply.verdict, ...(reply.decidedBy ? { decidedBy: reply.decidedBy.policy } : {}), text },
    deniedCount,
  };
}

const ISTIO_FAMILIES = ['istio_requests_total', 'istio_request_duration_milliseconds_count', 'istio_tcp_connections_opened_total', 'istio_tcp_sent_bytes_total'];
const SHOWN_LABELS = ['reporter', 'source_workload', 'destination_workload', 'destination_service_name', 'response_code', 'connection_security_policy', 'source_principal'];

function shown(labels: Record<string, string>): string {
  return SHOWN_LABELS.filter((k) => labels[k] !== undefined).map((k) => `${k}="${labels[k]}"`).join(',');
}

/** (e) istio_requests_total as the agents export it (their /metrics on the admin socket), and the mutual_tls series. */
export async function metricsStep(ctx: DemoContext): Promise<MetricsFigures> {
  ctx.out.heading('(e) Metrics: Istio\'s standard metrics, read from each agent\'s /metrics (admin socket)');
  const requests: MetricsFigures['requests'] = [];
  const mutualTls: MetricsFigures['mutualTls'] = [];
  for (const agent of [ctx.node1, ctx.node2]) {
    const text = await agent.metrics();
    for (const s of samples(text, 'istio_requests_total')) if (s.labels.destination_workload_namespace === 'shop' || s.labels.source_workload_namespace === 'shop') requests.push({ agent: agent.instance, name: 'istio_requests_total', ...s });
    for (const name of ISTIO_FAMILIES) {
      for (const s of samples(text, name)) if (s.labels.connection_security_policy === 'mutual_tls') mutualTls.push({ agent: agent.instance, name, ...s });
    }
  }
  requests.sort((a, b) => b.value - a.value);
  mutualTls.sort((a, b) => b.value - a.value);
  ctx.out.line(`$ curl --unix-socket /run/nodemesh/${ctx.node1.instance}/admin.sock http://agent/metrics   (and node2's)`);
  const print = (m: MetricFigure & { agent: string }) => ctx.out.line(`${m.agent}: ${m.name}{${shown(m.labels)}} ${m.value}`);
  ctx.out.line(`istio_requests_total: ${requests.length} series for namespace shop; the largest:`);
  requests.slice(0, 6).forEach(print);
  ctx.out.line(`with connection_security_policy="mutual_tls": ${mutualTls.length} series; the largest:`);
  mutualTls.slice(0, 4).forEach(print);
  return { requests, mutualTls };
}
