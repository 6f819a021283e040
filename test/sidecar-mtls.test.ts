/**
 * Sidecar mode with mutual TLS, on the simulator (fixture test/fixtures/sidecar-mtls):
 * each sidecar gets its own pod's certificate from the simulation's CA with a token bound
 * to its pod, listens on its pod's 15008, and talks the mTLS tunnel to node proxies and to
 * other sidecars; the receiving side names the caller by the certificate it presented.
 *
 *   node1: a1 (ambient, sa ambient-a), c1 (sidecar, sa client)
 *   node2: b1 (ambient, sa ambient-b), d1 (sidecar, sa legacy), x1 (outside the mesh)
 */
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminGet } from '../src/admin/admin-client';
import type { SidecarPodRecord } from '../src/admin/debug-replies';
import { CaClient } from '../src/identity/ca-client';
import { DEFAULT_CA_SERVER_NAME } from '../src/identity/ca-server';
import { workloadKeyAndCsr } from '../src/identity/workload-csr';
import { ROOT, SimFixture, uniqueSimName, waitFor, type AgentHandle } from '../src/sim/harness';
import { requireRoot } from './helpers/privileges';
import { writeSourceFile } from './helpers/source-dir';
import { metricSum } from './helpers/telemetry';

const TOPOLOGY = join(ROOT, 'test', 'fixtures', 'sidecar-mtls', 'topology.yaml');
const TEST_TIMEOUT = 120_000;
const SA = (name: string) => `spiffe://cluster.local/ns/demo/sa/${name}`;

describe('sidecar mode with mTLS on the simulator', { concurrency: false, timeout: 600_000 }, () => {
  let sim: SimFixture | undefined;
  let dir = '';
  let scratch = '';
  let node1: AgentHandle;
  let node2: AgentHandle;

  const sidecarSocket = (pod: string) => sim!.pod(pod).sidecarAdminSocket!;
  const sidecarMetrics = (pod: string) => adminGet<string>(sidecarSocket(pod), '/metrics');
  /** HTTP requests a destination counted from a caller's certificate (reporter destination, mutual_tls): it parses the tunnel streams' HTTP. */
  const streamsFrom = (metrics: string, principal: string, destination: string) =>
    metricSum(metrics, 'istio_requests_total', { reporter: 'destination', source_principal: principal, destination_workload: destination, connection_security_policy: 'mutual_tls' });

  before(async () => {
    if (process.getuid?.() !== 0) return;
    dir = mkdtempSync(join(tmpdir(), 'nm-sidecar-mtls-src-'));
    scratch = mkdtempSync(join(tmpdir(), 'nm-sidecar-mtls-tmp-'));
    copyFileSync(TOPOLOGY, join(dir, 'topology.yaml'));
    sim = await new SimFixture(uniqueSimName('scm'), dir).up();
    await Promise.all(['a1', 'c1', 'b1', 'd1'].map((p) => sim!.startL7App(`demo/${p}`, ['--name', p])));
    [node1, node2] = await Promise.all([sim.startAgent('node1'), sim.startAgent('node2')]);
    await node1.waitPod('demo/a1', 'enrolled');
    await node2.waitPod('demo/b1', 'enrolled');
  });

  after(async () => {
    await sim?.close();
    for (const d of [dir, scratch]) if (d) rmSync(d, { recursive: true, force: true });
  });

  test('each sidecar holds its own pod\'s certificate, issued by the CA for a token bound to that pod', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    for (const [pod, sa] of [['demo/c1', 'client'], ['demo/d1', 'legacy']] as const) {
      const [record] = await adminGet<SidecarPodRecord[]>(sidecarSocket(pod), '/debug/pods');
      assert.equal(record?.status, 'enrolled', JSON.stringify(record));
      assert.equal(record?.identity, SA(sa));
      assert.ok(Date.parse(record!.certificateExpiry!) > Date.now(), JSON.stringify(record));
    }
    // c1's token is good for c1 only: the CA refuses it a1's certificate, though a1 runs on
    // c1's node (an agent's token of node1 would get it), and d1's of node2.
    const id = sim!.state.identity!;
    const token = readFileSync(join(id.tokenDir, 'pod-demo_c1.jwt'), 'utf8').trim();
    const ca = new CaClient({ address: `unix:${id.socket}`, trustBundlePem: readFileSync(id.bundleFile, 'utf8'), serverName: DEFAULT_CA_SERVER_NAME }, () => token);
    const { csrPem } = await workloadKeyAndCsr(SA('ambient-a'));
    await assert.rejects(ca.sign({ csrPem, pod: { namespace: 'demo', name: 'a1', serviceAccount: 'ambient-a' } }), (e: Error & { code?: string }) => e.code === 'ERR_NM_CA_DENIED' && /bound to pod demo\/c1/.test(e.message));
    await assert.rejects(ca.sign({ csrPem, pod: { namespace: 'demo', name: 'd1', serviceAccount: 'legacy' } }), (e: Error & { code?: string }) => e.code === 'ERR_NM_CA_DENIED');
  });

  test('a sidecar reaches an ambient pod of another node through the mTLS tunnel; that node names it by its certificate', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    const before = streamsFrom(await node2.metrics(), SA('client'), 'b1');
    const r = await sim!.l7Client('demo/c1', ['http', 'http://b.demo/', '--count', '5']);
    assert.deepEqual(r.statuses, { 200: 5 }, JSON.stringify(r));
    await waitFor('node2 to count the tunnel streams from c1\'s certificate', async () => (streamsFrom(await node2.metrics(), SA('client'), 'b1') > before ? true : undefined), 10_000);
  });

  test('ambient pods reach a sidecar pod through its own 15008, across nodes and on the same node', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    const before = streamsFrom(await sidecarMetrics('demo/d1'), SA('ambient-a'), 'd1');
    const r = await sim!.l7Client('demo/a1', ['http', 'http://d.demo/', '--count', '5']);
    assert.deepEqual(r.statuses, { 200: 5 }, JSON.stringify(r));
    assert.deepEqual(r.servedBy, { d1: 5 });
    await waitFor('d1\'s sidecar to count a1\'s tunnel streams', async () => (streamsFrom(await sidecarMetrics('demo/d1'), SA('ambient-a'), 'd1') > before ? true : undefined), 10_000);
    // The same node: node1's proxy does not serve c1 (its sidecar does), so it tunnels to c1's 15008.
    const nearBefore = streamsFrom(await sidecarMetrics('demo/c1'), SA('ambient-a'), 'c1');
    const near = await sim!.l7Client('demo/a1', ['http', 'http://10.244.1.21:8080/']);
    assert.equal(near.status, 200, JSON.stringify(near));
    await waitFor('c1\'s sidecar to count a1\'s tunnel stream', async () => (streamsFrom(await sidecarMetrics('demo/c1'), SA('ambient-a'), 'c1') > nearBefore ? true : undefined), 10_000);
  });

  test('sidecar to sidecar: mTLS between the two sidecars', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    const before = streamsFrom(await sidecarMetrics('demo/d1'), SA('client'), 'd1');
    const r = await sim!.l7Client('demo/c1', ['http', 'http://d.demo/', '--count', '3']);
    assert.deepEqual(r.statuses, { 200: 3 }, JSON.stringify(r));
    await waitFor('d1\'s sidecar to count c1\'s tunnel streams', async () => (streamsFrom(await sidecarMetrics('demo/d1'), SA('client'), 'd1') > before ? true : undefined), 10_000);
  });

  test('STRICT on a sidecar pod: plaintext from outside the mesh is refused; the mesh\'s callers still get through', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    const open = await sim!.l7Client('demo/x1', ['http', 'http://10.244.2.21:8080/', '--timeout', '3000']);
    assert.equal(open.status, 200, `PERMISSIVE (the default) accepts plaintext: ${JSON.stringify(open)}`);
    const sidecars = [{ socket: sidecarSocket('demo/d1') }];
    const policy = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: d-strict, namespace: demo }
spec:
  selector: { matchLabels: { app: d } }
  mtls: { mode: STRICT }
`;
    await writeSourceFile(dir, scratch, 'strict.yaml', policy, [node1, node2, ...sidecars as unknown as AgentHandle[]]);
    try {
      const refusedBefore = metricSum(await sidecarMetrics('demo/d1'), 'nodemesh_mtls_plaintext_refused_total', { pod: 'd1', policy: 'demo/d-strict' });
      const refused = await sim!.l7Client('demo/x1', ['http', 'http://10.244.2.21:8080/', '--timeout', '3000']);
      assert.ok(refused.error !== undefined || refused.status === undefined, `plaintext refused: ${JSON.stringify(refused)}`);
      await waitFor('d1\'s sidecar to count the refusal', async () => (metricSum(await sidecarMetrics('demo/d1'), 'nodemesh_mtls_plaintext_refused_total', { pod: 'd1', policy: 'demo/d-strict' }) > refusedBefore ? true : undefined), 10_000);
      const fromAmbient = await sim!.l7Client('demo/a1', ['http', 'http://d.demo/']);
      assert.equal(fromAmbient.status, 200, JSON.stringify(fromAmbient));
      const fromSidecar = await sim!.l7Client('demo/c1', ['http', 'http://d.demo/']);
      assert.equal(fromSidecar.status, 200, JSON.stringify(fromSidecar));
    } finally {
      await writeSourceFile(dir, scratch, 'strict.yaml', undefined, [node1, node2, ...sidecars as unknown as AgentHandle[]]);
    }
  });

  test('authorization in a sidecar: a GEP-3779 policy admits only service account client; an Istio DENY on /admin; authz check agrees', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    const sidecars = [{ socket: sidecarSocket('demo/d1') }, { socket: sidecarSocket('demo/c1') }] as unknown as AgentHandle[];
    const policy = `apiVersion: gateway.networking.x-k8s.io/v1alpha1
kind: XAuthorizationPolicy
metadata: { name: d-from-client, namespace: demo }
spec:
  targetRefs: [{ group: "", kind: Pod, selector: { matchLabels: { app: d } } }]
  action: ALLOW
  enforcementLevel: Network
  rules: [{ sources: [{ type: ServiceAccount, serviceAccount: { name: client } }] }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: d-no-admin, namespace: demo }
spec:
  selector: { matchLabels: { app: d } }
  action: DENY
  rules: [{ to: [{ operation: { paths: ["/admin*"] } }] }]
`;
    await writeSourceFile(dir, scratch, 'authz.yaml', policy, [node1, node2, ...sidecars]);
    try {
      const fromClient = await sim!.l7Client('demo/c1', ['http', 'http://d.demo/']);
      assert.equal(fromClient.status, 200, `the sidecar c1 (service account client), over mTLS: ${JSON.stringify(fromClient)}`);
      const admin = await sim!.l7Client('demo/c1', ['http', 'http://d.demo/admin']);
      assert.deepEqual([admin.status, admin.body], [403, 'RBAC: access denied'], 'the DENY on /admin, in d1\'s sidecar');
      const fromAmbient = await sim!.l7Client('demo/a1', ['http', 'http://d.demo/']);
      assert.deepEqual([fromAmbient.status, fromAmbient.body], [403, 'RBAC: access denied'], `a1 (service account ambient-a) is not admitted: ${JSON.stringify(fromAmbient)}`);
      const plain = await sim!.l7Client('demo/x1', ['http', 'http://10.244.2.21:8080/', '--timeout', '3000']);
      assert.ok(plain.status !== 200, `plaintext from outside the mesh has no principal: ${JSON.stringify(plain)}`);
      const denied = metricSum(await sidecarMetrics('demo/d1'), 'nodemesh_authz_denied_total', { pod: 'd1' });
      assert.ok(denied >= 2, `d1's sidecar counted its denials: ${denied}`);
      // `nodemesh authz check` against d1's sidecar agrees.
      const check = async (from: string, path: string) => (await adminGet<{ verdict: string }>(sidecarSocket('demo/d1'), `/debug/authz?from=${from}&to=demo/d1&port=8080&method=GET&path=${encodeURIComponent(path)}`)).verdict;
      assert.equal(await check('demo/c1', '/'), 'allow');
      assert.equal(await check('demo/c1', '/admin'), 'deny');
      assert.equal(await check('demo/a1', '/'), 'deny');
    } finally {
      await writeSourceFile(dir, scratch, 'authz.yaml', undefined, [node1, node2, ...sidecars]);
    }
  });

  test('authorization in a sidecar, the rest of the cases: AUDIT, a DENY on a header, every HTTP/1 bypass of a DENY on /admin, HTTP rules on a TCP port fail closed', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    const sidecars = [{ socket: sidecarSocket('demo/d1') }, { socket: sidecarSocket('demo/c1') }] as unknown as AgentHandle[];
    const policy = (name: string, spec: string) => `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: ${name}, namespace: demo }
spec: ${spec}
`;
    await writeSourceFile(dir, scratch, 'authz.yaml',
      policy('d-no-admin', '{ selector: { matchLabels: { app: d } }, action: DENY, rules: [{ to: [{ operation: { paths: ["/admin", "/admin/*"] } }] }] }') +
      policy('d-no-debug', '{ selector: { matchLabels: { app: d } }, action: DENY, rules: [{ when: [{ key: "request.headers[x-debug]", values: ["*"] }] }] }') +
      policy('d-audit', '{ selector: { matchLabels: { app: d } }, action: AUDIT, rules: [{ to: [{ operation: { paths: ["/audited"] } }] }] }'),
      [node1, node2, ...sidecars]);
    try {
      const raw = (pod: string, port: number, bytes: string) => sim!.l7Client(pod, ['raw', '10.244.2.21', String(port), Buffer.from(bytes, 'latin1').toString('base64'), '--timeout', '5000']);
      assert.equal((await sim!.l7Client('demo/c1', ['http', 'http://d.demo/audited'])).status, 200, 'AUDIT denies nothing');
      assert.equal((await sim!.l7Client('demo/c1', ['http', 'http://d.demo/', '--header', 'x-debug:1'])).status, 403, 'DENY on a header');
      for (const client of ['demo/c1', 'demo/a1', 'demo/x1']) {
        for (const [bytes, what] of [
          ['PURGE /admin HTTP/1.1\r\nhost: x\r\n\r\n', 'another method'],
          ['get /admin HTTP/1.1\r\nhost: x\r\n\r\n', 'a lower-case method'],
          ['\r\nGET /admin HTTP/1.1\r\nhost: x\r\n\r\n', 'a leading empty line'],
          ['GET http://other.test/admin HTTP/1.1\r\nhost: x\r\n\r\n', 'an absolute-form target'],
          ['GET /public/../admin HTTP/1.1\r\nhost: x\r\n\r\n', 'a dot segment'],
          ['GET /ws HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\nGET /admin HTTP/1.1\r\nhost: x\r\n\r\n', 'an Upgrade the app declines, then GET /admin'],
        ] as const) {
          const r = await raw(client, 8080, bytes);
          assert.match(r.response ?? '', /HTTP\/1\.1 403 Forbidden\r\n[^]*RBAC: access denied$/, `${client} -> d1, ${what}: ${JSON.stringify(r)}`);
          assert.doesNotMatch(r.response ?? '', /"path":"\/admin"/, `${client}, ${what}: the app never saw /admin`);
        }
      }
      // The L7 rules cover every port of d1: TCP (no HTTP) to its echo port fails closed.
      const tcp = await raw('demo/c1', 9000, 'ping\n');
      assert.equal(tcp.bytes, 0, `TCP to d1 with HTTP rules on it is refused: ${JSON.stringify(tcp)}`);
      const audited = metricSum(await sidecarMetrics('demo/d1'), 'nodemesh_authz_denied_total', { pod: 'd1', policy: 'demo/d-no-admin' });
      assert.ok(audited >= 18, `d1's sidecar counted the /admin denials: ${audited}`);
    } finally {
      await writeSourceFile(dir, scratch, 'authz.yaml', undefined, [node1, node2, ...sidecars]);
    }
  });

  test('authorization in a sidecar, scope and edits: ALLOW on method and path, a namespace-wide ALLOW that matches nothing, a mesh-wide DENY from the root namespace, a rejected edit keeps the previous version; 403s counted in istio_requests_total', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    const sidecars = [{ socket: sidecarSocket('demo/d1') }, { socket: sidecarSocket('demo/c1') }] as unknown as AgentHandle[];
    const apply = (text: string | undefined) => writeSourceFile(dir, scratch, 'authz.yaml', text, [node1, node2, ...sidecars]);
    const policy = (ns: string, name: string, spec: string) => `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: ${name}, namespace: ${ns} }
spec: ${spec}
`;
    const get = async (pod: string, path: string, ...args: string[]) => (await sim!.l7Client(pod, ['http', `http://d.demo${path}`, ...args])).status as number;
    const check = async (from: string, method: string, path: string) => (await adminGet<{ verdict: string; decidedBy?: { policy: string } }>(sidecarSocket('demo/d1'), `/debug/authz?from=${from}&to=demo/d1&port=8080&method=${method}&path=${encodeURIComponent(path)}`));
    try {
      const allowGet = policy('demo', 'd-public-get', '{ selector: { matchLabels: { app: d } }, rules: [{ to: [{ operation: { methods: [GET], paths: ["/public*"] } }] }] }');
      await apply(allowGet);
      const before = metricSum(await sidecarMetrics('demo/d1'), 'istio_requests_total', { reporter: 'destination', response_code: '403', destination_workload: 'd1' });
      assert.equal(await get('demo/c1', '/public/a'), 200);
      assert.equal(await get('demo/c1', '/public/a', '--method', 'POST', '--body', 'x'), 403, 'the method is not allowed');
      assert.equal(await get('demo/a1', '/private'), 403, 'the path is not allowed');
      assert.equal((await check('demo/c1', 'POST', '/public/a')).verdict, 'deny');
      assert.equal((await check('demo/c1', 'GET', '/public/a')).decidedBy?.policy, 'demo/d-public-get');
      await waitFor('the sidecar of d1 to count the 403s as reporter=destination', async () => (metricSum(await sidecarMetrics('demo/d1'), 'istio_requests_total', { reporter: 'destination', response_code: '403', destination_workload: 'd1' }) >= before + 2 ? true : undefined), 10_000);
      // A rejected edit (CUSTOM has no authorizer here) leaves the version before it in force.
      await apply(allowGet.replace('rules:', 'action: CUSTOM, rules:'));
      assert.equal(await get('demo/c1', '/public/a', '--method', 'POST', '--body', 'x'), 403, 'the previous ALLOW still decides');
      assert.equal(await get('demo/c1', '/public/a'), 200);
      // Namespace-wide: an ALLOW policy with no rules denies the namespace's pods.
      await apply(policy('demo', 'nothing', '{}'));
      assert.equal(await get('demo/c1', '/public/a'), 403);
      // Mesh-wide, from the root namespace: a DENY on the caller.
      await apply(policy('nodemesh-system', 'no-ambient-a', '{ action: DENY, rules: [{ from: [{ source: { principals: ["cluster.local/ns/demo/sa/ambient-a"] } }] }] }'));
      assert.equal(await get('demo/a1', '/'), 403);
      assert.equal(await get('demo/c1', '/'), 200);
      assert.equal((await check('demo/a1', 'GET', '/')).decidedBy?.policy, 'nodemesh-system/no-ambient-a');
    } finally {
      await apply(undefined);
    }
  });
});
