/**
 * Authorization enforced on the simulator (root), with real apps in pods: the
 * destination side judges every connection (L4) and, where a policy has HTTP rules for
 * the port, every request (L7), on all three ways in: plaintext captured on 15006 (c3 is
 * not enrolled), tunnel streams from another node (node1's clients to b1 on node2), and
 * the same-node hand-over (node1's clients to s1).
 *
 * Topology deploy/examples/sim/l7, with c1 and c2 given service accounts of their own.
 * The tests share one simulation and run in order; each one removes its policies.
 */
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, SimFixture, uniqueSimName, waitFor, type AgentHandle, type HeldConnection } from '../src/sim/harness';
import { requireRoot } from './helpers/privileges';
import { debugConfig, writeSourceFile } from './helpers/source-dir';
import { adminGet } from '../src/admin/admin-client';
import { spawnSync } from 'node:child_process';
import { CLI } from '../src/sim/harness';
import { accessLines, metricSum } from './helpers/telemetry';

const EXAMPLE_DIR = join(ROOT, 'deploy', 'examples', 'sim', 'l7');
const S1 = '10.244.1.31';
const B1 = '10.244.2.11';
const TEST_TIMEOUT = 60_000;
const DENIED = 'RBAC: access denied';

const istio = (ns: string, name: string, spec: string) => `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: ${name}, namespace: ${ns} }
spec: ${spec}
`;

interface HttpOne { status: number; body: string; error?: string }
interface Raw { statusLines: string[]; bytes: number; closed: boolean; response: string; error?: string }

describe('authorization on the simulator', { concurrency: false, timeout: 300_000 }, () => {
  let sim: SimFixture | undefined;
  let dir = '';
  let logDir = '';
  let node1: AgentHandle;
  let node2: AgentHandle;
  let log1 = '';
  let log2 = '';
  let held: HeldConnection | undefined;

  const http1 = (pod: string, url: string, ...args: string[]): Promise<HttpOne> => sim!.l7Client(pod, ['http', url, ...args]);
  const raw = (pod: string, host: string, port: number, bytes: string): Promise<Raw> => sim!.l7Client(pod, ['raw', host, String(port), Buffer.from(bytes, 'latin1').toString('base64'), '--timeout', '5000']);
  const policies = (text: string | undefined) => writeSourceFile(dir, logDir, 'authz.yaml', text, [node1, node2]);
  const denied = async (agent: AgentHandle, labels: Record<string, string>) => metricSum(await agent.metrics(), 'nodemesh_authz_denied_total', labels);
  /**
   * What `nodemesh authz check` says, from the destination's agent (the admin route the
   * command reads): the verdict, and the policy that decided it.
   */
  const check = async (agent: AgentHandle, from: string, to: string, http?: { method?: string; path?: string; headers?: Record<string, string> }) => {
    const [pod, port] = to.split(':');
    const q = new URLSearchParams({ from, to: pod!, ...(port ? { port } : {}) });
    if (http?.method) q.set('method', http.method);
    if (http?.path) q.set('path', http.path);
    for (const [k, v] of Object.entries(http?.headers ?? {})) q.append('header', `${k}=${v}`);
    const reply = await adminGet<{ verdict: string; decidedBy?: { policy: string }; audited: Array<{ policy: string }> }>(agent.socket, `/debug/authz?${q.toString()}`);
    return `${reply.verdict}${reply.decidedBy ? ` ${reply.decidedBy.policy}` : ''}${reply.audited.length > 0 ? ` audited ${reply.audited.map((a) => a.policy).join(',')}` : ''}`;
  };
  /** An echo over TCP port 9000 (no HTTP): the bytes that came back. */
  const echoed = async (pod: string, host: string) => (await raw(pod, host, 9000, 'ping\n')).bytes;

  before(async () => {
    if (process.getuid?.() !== 0) return;
    dir = mkdtempSync(join(tmpdir(), 'nm-authz-src-'));
    logDir = mkdtempSync(join(tmpdir(), 'nm-authz-log-'));
    cpSync(EXAMPLE_DIR, dir, { recursive: true });
    // Two service accounts, so that a policy can admit one client and not the other.
    const file = join(dir, 'topology.yaml');
    const text = readFileSync(file, 'utf8');
    const changed = text.replace(/(name: c1\n(?:.*\n)*?spec:\n)/, '$1  serviceAccountName: c1\n').replace(/(name: c2\n(?:.*\n)*?spec:\n)/, '$1  serviceAccountName: c2\n');
    assert.equal((changed.match(/serviceAccountName: c[12]/g) ?? []).length, 2, 'the topology was edited');
    writeFileSync(file, changed);
    log1 = join(logDir, 'node1-access.log');
    log2 = join(logDir, 'node2-access.log');
    sim = await new SimFixture(uniqueSimName('authz'), dir).up();
    await Promise.all(['b1', 's1'].map((p) => sim!.startL7App(`demo/${p}`, ['--name', p])));
    [node1, node2] = await Promise.all([
      sim.startAgent('node1', ['--capture', 'ebpf', '--access-log', log1]),
      sim.startAgent('node2', ['--capture', 'ebpf', '--access-log', log2]),
    ]);
    for (const p of ['c1', 'c2', 's1']) await node1.waitPod(`demo/${p}`, 'enrolled', 20_000);
    await node2.waitPod('demo/b1', 'enrolled', 20_000);
  });

  after(async () => {
    held?.close();
    await sim?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (logDir) rmSync(logDir, { recursive: true, force: true });
  });

  test('an ALLOW policy for one service account: the other is refused, cross-node through the tunnel and on the same node, HTTP and TCP', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    const l4Before = await denied(node2, { layer: 'l4', policy: 'none' });
    await policies(istio('demo', 'b-from-c1', '{ selector: { matchLabels: { app: b } }, rules: [{ from: [{ source: { principals: ["cluster.local/ns/demo/sa/c1"] } }] }] }') +
      istio('demo', 's-from-c1', '{ selector: { matchLabels: { app: s } }, rules: [{ from: [{ source: { principals: ["cluster.local/ns/demo/sa/c1"] } }] }] }'));
    assert.equal((await http1('demo/c1', `http://${B1}:8080/`)).status, 200, 'c1 through the tunnel');
    assert.equal((await http1('demo/c1', `http://${S1}:8080/`)).status, 200, 'c1 on the same node');
    assert.ok((await echoed('demo/c1', B1)) > 0, 'c1 over TCP through the tunnel');
    assert.ok((await echoed('demo/c1', S1)) > 0, 'c1 over TCP on the same node');
    const cross = await http1('demo/c2', `http://${B1}:8080/`);
    assert.deepEqual([cross.status, cross.body], [403, DENIED], 'c2 through the tunnel: the CONNECT is refused (L4), the source answers as the destination would');
    const local = await http1('demo/c2', `http://${S1}:8080/`);
    assert.deepEqual([local.status, local.body], [403, DENIED], 'c2 on the same node');
    assert.equal(await echoed('demo/c2', B1), 0, 'c2 over TCP through the tunnel: reset');
    assert.equal(await echoed('demo/c2', S1), 0, 'c2 over TCP on the same node: reset');
    // Plaintext (c3 is not enrolled) on b1's declared app port, captured on 15006: no principal.
    const plain = await http1('demo/c3', `http://${B1}:8080/`);
    assert.ok(plain.error !== undefined && plain.status === undefined, `plaintext is reset: ${JSON.stringify(plain)}`);
    assert.ok((await denied(node2, { layer: 'l4', policy: 'none', namespace: 'demo', pod: 'b1' })) >= l4Before + 2, 'node2 counted its L4 refusals');
    assert.ok((await denied(node1, { pod: 's1', policy: 'none' })) >= 2, 'node1 counted the same-node refusals');
    // `nodemesh authz check` agrees with each of those.
    assert.equal(await check(node2, 'demo/c1', 'demo/b1:8080'), 'allow demo/b-from-c1');
    assert.equal(await check(node1, 'demo/c1', 'demo/s1:8080'), 'allow demo/s-from-c1');
    assert.equal(await check(node2, 'demo/c2', 'demo/b1:8080'), 'deny');
    assert.equal(await check(node1, 'demo/c2', 'demo/s1:9000'), 'deny');
    assert.equal(await check(node2, 'demo/c3', 'demo/b1:8080', { method: 'GET', path: '/' }), 'deny', 'plaintext: no principal');
    // The command itself, as a user runs it.
    const cli = spawnSync(process.execPath, [CLI, 'authz', 'check', '--admin-socket', node2.socket, '--from', 'demo/c2', '--to', 'demo/b1:8080', '--method', 'GET', '--path', '/'], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(cli.status, 0, cli.stderr);
    assert.match(cli.stdout, /ALLOW  AuthorizationPolicy demo\/b-from-c1 +\(selector app=b; 1 rule\)/);
    assert.match(cli.stdout, /verdict: +DENY\n/);
    assert.match(cli.stdout, /source: +demo\/c2 .*spiffe:\/\/cluster\.local\/ns\/demo\/sa\/c2/);
    await policies(undefined);
    assert.equal((await http1('demo/c2', `http://${B1}:8080/`)).status, 200, 'the policy removed: c2 admitted again');
  });

  test('a GEP-3779 XAuthorizationPolicy that admits only service account c1: c2\'s connection is reset, c1\'s flows', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    await policies(`apiVersion: gateway.networking.x-k8s.io/v1alpha1
kind: XAuthorizationPolicy
metadata: { name: b-from-c1, namespace: demo }
spec:
  targetRefs: [{ group: "", kind: Pod, selector: { matchLabels: { app: b } } }]
  action: ALLOW
  enforcementLevel: Network
  rules: [{ sources: [{ type: ServiceAccount, serviceAccount: { name: c1 } }] }]
`);
    assert.ok((await echoed('demo/c1', B1)) > 0, 'c1 over TCP through the tunnel');
    assert.equal(await echoed('demo/c2', B1), 0, 'c2 over TCP: reset');
    assert.equal((await http1('demo/c1', `http://${B1}:8080/`)).status, 200);
    assert.equal(await check(node2, 'demo/c2', 'demo/b1:9000'), 'deny');
    assert.equal(await check(node2, 'demo/c1', 'demo/b1:9000'), 'allow demo/b-from-c1');
    await policies(undefined);
  });

  test('L7: ALLOW on method and path, DENY on a header (DENY wins), AUDIT logs without denying; counted in istio_requests_total and named in the access log', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    await policies(istio('demo', 'b-public-get', '{ selector: { matchLabels: { app: b } }, rules: [{ to: [{ operation: { methods: [GET], paths: ["/public*"] } }] }] }') +
      istio('demo', 'b-no-debug', '{ selector: { matchLabels: { app: b } }, action: DENY, rules: [{ when: [{ key: "request.headers[x-debug]", values: ["*"] }] }] }') +
      istio('demo', 'b-audit', '{ selector: { matchLabels: { app: b } }, action: AUDIT, rules: [{ to: [{ operation: { paths: ["/public/audited"] } }] }] }'));
    const base = `http://${B1}:8080`;
    assert.equal((await http1('demo/c1', `${base}/public/a`)).status, 200);
    const post = await http1('demo/c1', `${base}/public/a`, '--method', 'POST', '--body', 'x');
    assert.deepEqual([post.status, post.body], [403, DENIED], 'the method is not allowed');
    assert.equal((await http1('demo/c1', `${base}/private`)).status, 403, 'the path is not allowed');
    assert.equal((await http1('demo/c1', `${base}/public/a`, '--header', 'x-debug:1')).status, 403, 'DENY wins over ALLOW');
    assert.equal((await http1('demo/c1', `${base}/public/audited`)).status, 200, 'AUDIT denies nothing');
    const lines = await waitFor('node2\'s access-log lines for the denials and the audit', () => {
      const got = accessLines(log2).filter((l) => l.reporter === 'destination' && l.kind === 'http');
      return got.filter((l) => l.response_code === 403).length >= 3 && got.some((l) => l.path === '/public/audited') ? got : undefined;
    }, 10_000);
    const byHeader = lines.find((l) => l.response_code === 403 && l.path === '/public/a' && l.method === 'GET');
    assert.equal(byHeader?.response_code_details, 'rbac_access_denied_matched_policy[ns[demo]-policy[b-no-debug]-rule[0]]');
    assert.equal(byHeader?.connection_security_policy, 'mutual_tls');
    assert.equal(byHeader?.source_principal, 'spiffe://cluster.local/ns/demo/sa/c1');
    assert.equal(lines.find((l) => l.path === '/private')?.response_code_details, 'rbac_access_denied_matched_policy[none]');
    assert.equal(lines.find((l) => l.path === '/public/audited')?.audit_policies, 'demo/b-audit#0');
    const metrics = await node2.metrics();
    assert.ok(metricSum(metrics, 'istio_requests_total', { reporter: 'destination', response_code: '403', destination_workload: 'b1', response_flags: '-' }) >= 3);
    assert.ok(metricSum(metrics, 'nodemesh_authz_denied_total', { policy: 'demo/b-no-debug', layer: 'l7' }) >= 1);
    // `nodemesh authz check` agrees, request by request.
    assert.equal(await check(node2, 'demo/c1', 'demo/b1:8080', { method: 'GET', path: '/public/a' }), 'allow demo/b-public-get');
    assert.equal(await check(node2, 'demo/c1', 'demo/b1:8080', { method: 'POST', path: '/public/a' }), 'deny');
    assert.equal(await check(node2, 'demo/c1', 'demo/b1:8080', { method: 'GET', path: '/private' }), 'deny');
    assert.equal(await check(node2, 'demo/c1', 'demo/b1:8080', { method: 'GET', path: '/public/a', headers: { 'x-debug': '1' } }), 'deny demo/b-no-debug');
    assert.equal(await check(node2, 'demo/c1', 'demo/b1:8080', { method: 'GET', path: '/public/audited' }), 'allow demo/b-public-get audited demo/b-audit');
    await policies(undefined);
  });

  test('every HTTP/1 bypass of a DENY on /admin is refused: through the tunnel, on the same node, and plaintext on 15006', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    await policies(istio('demo', 'no-admin', '{ action: DENY, rules: [{ to: [{ operation: { paths: ["/admin", "/admin/*"] } }] }] }'));
    const payloads: Array<[string, string]> = [
      ['PURGE /admin HTTP/1.1\r\nhost: x\r\n\r\n', 'another method'],
      ['get /admin HTTP/1.1\r\nhost: x\r\n\r\n', 'a lower-case method'],
      ['\r\nGET /admin HTTP/1.1\r\nhost: x\r\n\r\n', 'a leading empty line'],
      ['GET http://other.test/admin HTTP/1.1\r\nhost: x\r\n\r\n', 'an absolute-form target'],
      ['GET /ws HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\nGET /admin HTTP/1.1\r\nhost: x\r\n\r\n', 'an Upgrade the app declines, then GET /admin'],
    ];
    for (const [client, host, way] of [['demo/c1', B1, 'tunnel'], ['demo/c1', S1, 'same node'], ['demo/c3', S1, 'plaintext']] as const) {
      assert.equal((await http1(client, `http://${host}:8080/`)).status, 200, `${way}: / is allowed`);
      for (const [bytes, what] of payloads) {
        const r = await raw(client, host, 8080, bytes);
        assert.equal(r.error, undefined, `${way}, ${what}: ${JSON.stringify(r)}`);
        assert.match(r.response, /HTTP\/1\.1 403 Forbidden\r\n[^]*RBAC: access denied$/, `${way}, ${what}`);
        assert.doesNotMatch(r.response, /"path":"\/admin"/, `${way}, ${what}: the app never saw /admin`);
      }
    }
    assert.equal(await check(node2, 'demo/c1', 'demo/b1:8080', { method: 'PURGE', path: '/admin' }), 'deny demo/no-admin');
    assert.equal(await check(node1, 'demo/c3', 'demo/s1:8080', { method: 'get', path: '/public/../admin' }), 'deny demo/no-admin', 'a dot segment resolves to /admin');
    const dotted = await raw('demo/c1', B1, 8080, 'GET /public/../admin HTTP/1.1\r\nhost: x\r\n\r\n');
    assert.match(dotted.response, /HTTP\/1\.1 403 Forbidden/, 'the proxy agrees: /public/../admin is /admin');
    await policies(undefined);
  });

  test('scope: an ALLOW policy that matches nothing denies the namespace; a mesh-wide DENY from the root namespace (nodemesh-system)', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    await policies(istio('demo', 'nothing', '{}'));
    assert.equal((await http1('demo/c1', `http://${B1}:8080/`)).status, 403);
    assert.equal((await http1('demo/c1', `http://${S1}:8080/`)).status, 403);
    await policies(istio('nodemesh-system', 'no-c2', '{ action: DENY, rules: [{ from: [{ source: { principals: ["cluster.local/ns/demo/sa/c2"] } }] }] }'));
    assert.equal((await http1('demo/c1', `http://${B1}:8080/`)).status, 200);
    assert.equal((await http1('demo/c2', `http://${B1}:8080/`)).status, 403);
    assert.equal((await http1('demo/c2', `http://${S1}:8080/`)).status, 403);
    assert.ok((await denied(node2, { policy: 'nodemesh-system/no-c2' })) >= 1);
    assert.equal(await check(node2, 'demo/c2', 'demo/b1:8080'), 'deny nodemesh-system/no-c2');
    assert.equal(await check(node1, 'demo/c1', 'demo/s1:8080'), 'allow');
    await policies(undefined);
  });

  test('HTTP rules on a TCP port fail closed: a DENY on a path refuses TCP, HTTP on the same pod still passes', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    await policies(istio('demo', 'no-admin-b', '{ selector: { matchLabels: { app: b } }, action: DENY, rules: [{ to: [{ operation: { paths: ["/admin"] } }] }] }'));
    assert.equal(await echoed('demo/c1', B1), 0, 'TCP through the tunnel: the L7 DENY fails closed');
    assert.equal((await http1('demo/c1', `http://${B1}:8080/`)).status, 200);
    assert.ok((await denied(node2, { policy: 'demo/no-admin-b', layer: 'l4' })) >= 1);
    assert.equal(await check(node2, 'demo/c1', 'demo/b1:9000'), 'deny demo/no-admin-b', 'authz check: a connection, judged at L4');
    await policies(undefined);
    assert.ok((await echoed('demo/c1', B1)) > 0);
  });

  test('a policy change applies to new connections while a held one keeps working; a file that stops parsing keeps its last good policies', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    held = sim!.hold('demo/c1', B1, 9000);
    await held.ready;
    assert.match(await held.roundTrip('before'), /before/);
    const deny = istio('demo', 'no-c1', '{ selector: { matchLabels: { app: b } }, action: DENY, rules: [{ from: [{ source: { principals: ["cluster.local/ns/demo/sa/c1"] } }] }] }');
    await policies(deny);
    assert.equal(await echoed('demo/c1', B1), 0, 'a new connection is refused');
    assert.equal((await http1('demo/c1', `http://${B1}:8080/`)).status, 403, 'a new request is refused');
    assert.match(await held.roundTrip('after'), /after/, 'the connection authorized before the change keeps working');
    await policies(`${deny}  this: [is not yaml\n`);
    assert.equal((await http1('demo/c1', `http://${B1}:8080/`)).status, 403, 'the last good version of the file stays in effect');
    // A policy the parser rejects (CUSTOM has no authorizer here): rejected with its
    // reason, and the version before it stays in force.
    await policies(deny.replace('action: DENY', 'action: CUSTOM'));
    const config = await debugConfig(node2);
    assert.ok(config.rejected.some((r) => r.object === 'AuthorizationPolicy demo/no-c1' && /CUSTOM/.test(r.reason)), JSON.stringify(config.rejected));
    assert.equal((await http1('demo/c1', `http://${B1}:8080/`)).status, 403, 'the previous version still denies');
    assert.equal(await check(node2, 'demo/c1', 'demo/b1:8080'), 'deny demo/no-c1');
    held.close();
    held = undefined;
    await policies(undefined);
    assert.equal((await http1('demo/c1', `http://${B1}:8080/`)).status, 200);
  });
});
