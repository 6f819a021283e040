/**
 * Workload identity and mTLS, end to end on the simulator (deploy/examples/sim/l7: c1, c2
 * and s1 enrolled on node1, b1 and b2 on node2, c3 and b-shadow outside the mesh). The
 * simulation's CA issues 2-minute certificates, so renewals happen within the suite.
 *
 * The tests share one simulation and run in order.
 */
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CaClient } from '../src/identity/ca-client';
import { DEFAULT_CA_SERVER_NAME } from '../src/identity/ca-server';
import { workloadKeyAndCsr } from '../src/identity/workload-csr';
import { CLI, ROOT, SimFixture, uniqueSimName, waitFor, type AgentHandle, type HeldConnection } from '../src/sim/harness';
import { requireRoot } from './helpers/privileges';
import { debugConfig, writeSourceFile } from './helpers/source-dir';
import { accessLines, metricSum } from './helpers/telemetry';

const EXAMPLE_DIR = join(ROOT, 'deploy', 'examples', 'sim', 'l7');
const SNIFFER = join(ROOT, 'test', 'fixtures', 'first-payload.py');
const B = 'b.demo.svc.cluster.local';
const B1 = '10.244.2.11';
const DEFAULT_SA = 'spiffe://cluster.local/ns/demo/sa/default';
const TEST_TIMEOUT = 240_000;

describe('workload identity and mTLS on the simulator', { concurrency: false, timeout: 900_000 }, () => {
  let sim: SimFixture | undefined;
  let dir = '';
  let logDir = '';
  let node1: AgentHandle;
  let node2: AgentHandle;
  let log2 = '';
  let held: HeldConnection | undefined;
  const children: ChildProcess[] = [];

  const http1 = (pod: string, url: string, ...args: string[]): Promise<{ status: number; servedBy?: string; error?: string }> => sim!.l7Client(pod, ['http', url, ...args]);
  const expiryOf = async (agent: AgentHandle, pod: string) => (await agent.pods()).find((p) => p.key === pod)?.certificateExpiry;
  const roots = async (agent: AgentHandle) => metricSum(await agent.metrics(), 'nodemesh_trust_bundle_roots', {});
  /** A request from c1 across nodes that must succeed. */
  async function crossNodeOk(what: string): Promise<void> {
    const r = await http1('demo/c1', `http://${B}/hello`, '--header', 'x-canary: always');
    assert.equal(r.status, 200, `${what}: ${JSON.stringify(r)}`);
  }
  /** The held connection (c1 to b1:9000 through the tunnel) still carries bytes both ways. */
  async function heldAlive(what: string): Promise<void> {
    const line = `still here ${what} ${Date.now()}`;
    assert.match(await held!.roundTrip(line), new RegExp(line), `the connection opened before ${what} keeps working`);
  }

  before(async () => {
    if (process.getuid?.() !== 0) return;
    dir = mkdtempSync(join(tmpdir(), 'nm-id-src-'));
    logDir = mkdtempSync(join(tmpdir(), 'nm-id-log-'));
    cpSync(EXAMPLE_DIR, dir, { recursive: true });
    log2 = join(logDir, 'node2-access.log');
    sim = await new SimFixture(uniqueSimName('id'), dir).up({ workloadLifetime: '2m' });
    await Promise.all(['b1', 'b2', 'b-shadow', 's1'].map((p) => sim!.startL7App(`demo/${p}`, ['--name', p])));
    [node1, node2] = await Promise.all([
      sim.startAgent('node1', ['--capture', 'ebpf']),
      sim.startAgent('node2', ['--capture', 'ebpf', '--access-log', log2]),
    ]);
    for (const p of ['c1', 'c2', 's1']) await node1.waitPod(`demo/${p}`, 'enrolled', 20_000);
    for (const p of ['b1', 'b2']) await node2.waitPod(`demo/${p}`, 'enrolled', 20_000);
  });

  after(async () => {
    held?.close();
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await sim?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (logDir) rmSync(logDir, { recursive: true, force: true });
  });

  test('every enrolled pod has its SPIFFE identity and a certificate that expires within its 2-minute lifetime', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    for (const [agent, pod] of [[node1, 'demo/c1'], [node2, 'demo/b1']] as const) {
      const record = (await agent.pods()).find((p) => p.key === pod)!;
      assert.equal(record.identity, DEFAULT_SA);
      const left = Date.parse(record.certificateExpiry!) - Date.now();
      assert.ok(left > 0 && left <= 120_000, `${pod}'s certificate expires in ${left} ms`);
    }
    const status = execFileSync(process.execPath, [CLI, 'status', '--admin-socket', node1.socket], { encoding: 'utf8' });
    assert.match(status, /demo\/c1\s+spiffe:\/\/cluster\.local\/ns\/demo\/sa\/default\s+\d{4}-\d\d-\d\dT/);
    assert.equal(metricSum(await node1.metrics(), 'nodemesh_certificate_requests_total', { result: 'issued' }) >= 1, true);
  });

  test('across nodes the wire carries TLS (a ClientHello first, not an HTTP/2 preface); the destination reports the client\'s SPIFFE ID with mutual_tls', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    // The first tunnel session of the suite starts after the sniffer listens.
    const { netns } = sim!.state.fabric;
    const sniffer = spawn('ip', ['netns', 'exec', netns, 'python3', SNIFFER, 'any', '15008', '60'], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(sniffer);
    let out = '';
    sniffer.stdout!.setEncoding('utf8');
    sniffer.stdout!.on('data', (d: string) => { out += d; });
    await waitFor('the sniffer to listen', () => out.includes('ready'), 10_000);
    await crossNodeOk('the first cross-node request');
    const payload = await waitFor('the first bytes to port 15008 on the fabric', () => /payload ([0-9a-f]+)/.exec(out)?.[1], 20_000);
    // A TLS record of type handshake (0x16), then a handshake message of type ClientHello (0x01).
    assert.equal(payload.slice(0, 4), '1603', `a TLS handshake record, got ${payload}`);
    assert.equal(payload.slice(10, 12), '01', `a ClientHello, got ${payload}`);
    assert.notEqual(Buffer.from(payload, 'hex').toString('latin1').slice(0, 3), 'PRI', 'not a plaintext HTTP/2 preface');

    const m2 = await node2.metrics();
    // It parses the HTTP inside the tunnel stream and reports the request, as a destination sidecar does.
    const labels = { reporter: 'destination', source_workload: 'c1', source_principal: DEFAULT_SA, destination_workload: 'b2', destination_principal: DEFAULT_SA, connection_security_policy: 'mutual_tls', request_protocol: 'http' };
    assert.ok(metricSum(m2, 'istio_requests_total', labels) >= 1, `node2 counted the request from c1's certificate with mutual_tls:\n${m2.split('\n').filter((l) => l.startsWith('istio_requests_total')).join('\n')}`);
    // A TCP connection that ends: its tunnel stream is logged when it closes.
    const tcp = await sim!.client('demo/c1', B1, 9000, 'logged');
    assert.match(tcp.reply ?? '', /logged/, JSON.stringify(tcp));
    const lines = await waitFor('node2\'s access log line for the tunnel stream', () => {
      const got = accessLines(log2).filter((l) => l.kind === 'tcp' && l.reporter === 'destination' && l.source_workload === 'c1' && l.destination_workload === 'b1');
      return got.length > 0 ? got : undefined;
    }, 20_000);
    for (const l of lines) {
      assert.equal(l.source_principal, DEFAULT_SA);
      assert.equal(l.connection_security_policy, 'mutual_tls');
    }
  });

  test('a pod outside the mesh gets nothing from 15008 (plaintext HTTP/2 or TLS without a certificate), and a forged source header changes nothing', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    const before = metricSum(await node2.metrics(), 'nodemesh_tls_handshake_failures_total', { side: 'server' });
    // The attack of the issue, from c3 (not enrolled): a CONNECT to b1's app port with a made-up source.
    const attack = `
      const http2 = require('node:http2'); const tls = require('node:tls');
      const out = {};
      const done = () => { if ('plain' in out && 'tls' in out) { console.log(JSON.stringify(out)); process.exit(0); } };
      const s = http2.connect('http://${B1}:15008');
      s.on('error', (e) => { out.plain ??= 'error ' + e.code; done(); });
      s.on('close', () => { out.plain ??= 'closed'; done(); });
      const r = s.request({ ':method': 'CONNECT', ':authority': '${B1}:8080', 'x-nodemesh-source-workload': 'demo/c1' });
      r.on('response', (h) => { out.plain = 'status ' + h[':status']; done(); });
      r.on('error', () => undefined);
      const c = tls.connect({ host: '${B1}', port: 15008, ALPNProtocols: ['h2'], rejectUnauthorized: false });
      c.on('secureConnect', () => { c.write('PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n'); });
      c.on('data', () => { out.tls ??= 'answered'; });
      c.on('error', (e) => { out.tls ??= 'error ' + (e.code || e.message); done(); });
      c.on('close', () => { out.tls ??= 'closed'; done(); });
      setTimeout(() => { out.plain ??= 'timeout'; out.tls ??= 'timeout'; done(); }, 15000);`;
    const result = JSON.parse(await sim!.runInPod('demo/c3', [process.execPath, '-e', attack])) as { plain: string; tls: string };
    assert.doesNotMatch(result.plain, /status/, `plaintext HTTP/2 got an answer: ${result.plain}`);
    assert.doesNotMatch(result.tls, /answered|timeout/, `TLS without a client certificate got through: ${result.tls}`);
    await waitFor('node2 to count both refusals', async () => metricSum(await node2.metrics(), 'nodemesh_tls_handshake_failures_total', { side: 'server' }) >= before + 2, 10_000);

    // A forged header from an enrolled pod is an HTTP header like any other: the destination
    // still names the source by its certificate.
    const r = await http1('demo/c1', `http://${B}/hello`, '--header', 'x-canary: always', '--header', 'x-nodemesh-source-workload: prod/billing');
    assert.equal(r.status, 200);
    const m2 = await node2.metrics();
    for (const name of ['istio_requests_total', 'istio_tcp_connections_opened_total']) {
      assert.equal(metricSum(m2, name, { source_workload: 'billing' }), 0, name);
      assert.equal(metricSum(m2, name, { source_workload_namespace: 'prod' }), 0, name);
    }
    assert.ok(metricSum(m2, 'istio_requests_total', { reporter: 'destination', source_workload: 'c1', source_principal: DEFAULT_SA }) >= 1, 'named by its certificate');
  });

  test('a malicious agent: node1\'s token gets no certificate for a pod of node2, and a token for another audience gets none at all', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    const id = sim!.state.identity!;
    const bundle = readFileSync(id.bundleFile, 'utf8');
    const token1 = readFileSync(join(id.tokenDir, 'node1.jwt'), 'utf8').trim();
    const ca = (token: string) => new CaClient({ address: `unix:${id.socket}`, trustBundlePem: bundle, serverName: DEFAULT_CA_SERVER_NAME }, () => token);
    const { csrPem } = await workloadKeyAndCsr(DEFAULT_SA);
    await assert.rejects(ca(token1).sign({ csrPem, pod: { namespace: 'demo', name: 'b1', serviceAccount: 'default' } }),
      (e: Error & { code?: string }) => e.code === 'ERR_NM_CA_DENIED' && /runs on node node2, not on the agent's node node1/.test(e.message));
    const otherAudience = execFileSync(process.execPath, [CLI, 'identity', 'token', '--state-dir', id.stateDir, '--node', 'node2', '--audience', 'kubernetes'], { encoding: 'utf8' }).trim();
    await assert.rejects(ca(otherAudience).sign({ csrPem, pod: { namespace: 'demo', name: 'b1', serviceAccount: 'default' } }),
      (e: Error & { code?: string }) => e.code === 'ERR_NM_CA_UNAUTHENTICATED' && /audience/.test(e.message));
    // The same request with node2's own token is what the CA is for.
    const token2 = readFileSync(join(id.tokenDir, 'node2.jwt'), 'utf8').trim();
    assert.match((await ca(token2).sign({ csrPem, pod: { namespace: 'demo', name: 'b1', serviceAccount: 'default' } })).chainPem, /BEGIN CERTIFICATE/);
  });

  test('PeerAuthentication STRICT: plaintext from outside the mesh is refused and counted, mesh traffic flows; a PERMISSIVE port and a bad policy', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    const write = (name: string, text: string | undefined) => writeSourceFile(dir, logDir, name, text, [node1, node2]);
    const fromOutside = () => http1('demo/c3', `http://${B1}:8080/hello`);
    const refusedCount = async () => metricSum(await node2.metrics(), 'nodemesh_mtls_plaintext_refused_total', { namespace: 'demo', pod: 'b1', policy: 'demo/strict' });
    assert.equal((await fromOutside()).status, 200, 'PERMISSIVE (no policy): plaintext from c3 reaches b1');
    try {
      await write('peer-authentication.yaml', 'apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: { name: strict, namespace: demo }\nspec: { mtls: { mode: STRICT } }\n');
      assert.deepEqual((await debugConfig(node2)).rejected, []);
      const refused = await fromOutside();
      assert.equal(refused.status, undefined, `STRICT: c3's plaintext must not get an answer: ${JSON.stringify(refused)}`);
      assert.ok(refused.error, 'the connection failed');
      assert.ok((await refusedCount()) >= 1, 'node2 counted the refusal under the policy that made it');
      assert.match(node2.log, /plaintext from 10\.244\.\d+\.\d+ to demo\/b1 port 8080 refused: PeerAuthentication demo\/strict makes it STRICT/);
      // The mesh's own traffic: across nodes through the tunnel (mTLS), and a direct pod address too.
      await crossNodeOk('STRICT, c1 to b through the tunnel');
      assert.equal((await http1('demo/c1', `http://${B1}:8080/hello`)).status, 200, 'STRICT, c1 to b1 by its address: through the tunnel');

      // One port opened up for plaintext; a policy nodemesh cannot read is refused, never applied as PERMISSIVE.
      await write('peer-authentication-b.yaml', [
        'apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: { name: b-http, namespace: demo }',
        'spec: { selector: { matchLabels: { app: b } }, portLevelMtls: { "8080": { mode: PERMISSIVE } } }',
        '---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: { name: typo, namespace: demo }',
        'spec: { selector: { matchLabels: { app: c } }, mtls: { mode: Disable } }\n',
      ].join('\n'));
      assert.equal((await fromOutside()).status, 200, 'port 8080 of b is PERMISSIVE by portLevelMtls');
      const rejected = (await debugConfig(node2)).rejected;
      assert.equal(rejected.length, 1, JSON.stringify(rejected));
      assert.equal(rejected[0]!.object, 'PeerAuthentication demo/typo');
      assert.match(rejected[0]!.reason, /spec\.mtls\.mode: "Disable" is not an mTLS mode .*DISABLE/);
    } finally {
      await write('peer-authentication-b.yaml', undefined);
      await write('peer-authentication.yaml', undefined);
    }
    assert.equal((await fromOutside()).status, 200, 'the policy removed: PERMISSIVE again');
  });

  test('rotation: a renewal keeps old connections and moves new ones to a new session; a root rollover drops nothing', { timeout: 420_000 }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    held = sim!.hold('demo/c1', B1, 9000);
    await held.ready;
    await heldAlive('any renewal');
    const sessions = async () => metricSum(await node1.metrics(), 'nodemesh_tunnel_sessions_total', { side: 'client' });
    const renewedBy = async (before: Record<string, string | undefined>, timeoutMs = 150_000) => waitFor('both pods\' certificates to be renewed', async () => {
      const now = { c1: await expiryOf(node1, 'demo/c1'), b1: await expiryOf(node2, 'demo/b1') };
      return now.c1 !== before.c1 && now.b1 !== before.b1 ? now : undefined;
    }, timeoutMs);

    // 1. A renewal (at half of the 2 minutes).
    const first = { c1: await expiryOf(node1, 'demo/c1'), b1: await expiryOf(node2, 'demo/b1') };
    const sessionsBefore = await sessions();
    const renewed = await renewedBy(first);
    await heldAlive('the renewal');
    await crossNodeOk('after the renewal');
    assert.ok(await sessions() > sessionsBefore, 'new connections went to a new session, made with the new certificate');
    assert.ok(metricSum(await node1.metrics(), 'nodemesh_certificate_requests_total', { result: 'rotated' }) >= 1);

    // 2. A root rollover: stage (trusted everywhere first), activate, retire.
    const id = sim!.state.identity!;
    const rotate = (...flags: string[]) => execFileSync(process.execPath, [CLI, 'identity', 'rotate-root', '--state-dir', id.stateDir, ...flags], { encoding: 'utf8' });
    rotate();
    await waitFor('both agents to trust both roots', async () => (await roots(node1)) === 2 && (await roots(node2)) === 2, 20_000);
    await heldAlive('the new root was staged');
    rotate('--activate');
    await renewedBy(renewed);
    await heldAlive('certificates of the new root replaced the old root\'s');
    await crossNodeOk('with certificates of the new root');
    rotate('--retire');
    await waitFor('both agents to trust the new root alone', async () => (await roots(node1)) === 1 && (await roots(node2)) === 1, 20_000);
    await heldAlive('the old root was retired');
    await crossNodeOk('with the old root retired');
  });

  test('the CA stopped: traffic keeps flowing; a new pod is reported failed with the reason, then captured once the CA is back', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    await sim!.stopCa();
    await crossNodeOk('with the CA down');
    if (held) await heldAlive('the CA stopped');
    // b-shadow joins the mesh under a service account of its own: its certificate must be asked for.
    const file = join(dir, 'topology.yaml');
    const text = readFileSync(file, 'utf8');
    const changed = text.replace(/(name: b-shadow\n(?:.*\n)*?  labels: \{ app: b-shadow \})/, '$1\n  annotations: { nodemesh.dev/mode: ambient }')
      .replace(/(name: b-shadow\n(?:.*\n)*?spec:\n)/, '$1  serviceAccountName: shadow\n');
    assert.notEqual(changed, text, 'the topology was edited');
    writeFileSync(`${file}.tmp`, changed);
    renameSync(`${file}.tmp`, file);
    const failed = await node2.waitPod('demo/b-shadow', 'failed', 30_000);
    assert.equal(failed?.code, 'ERR_NM_IDENTITY_UNAVAILABLE');
    assert.match(failed?.reason ?? '', /spiffe:\/\/cluster\.local\/ns\/demo\/sa\/shadow.*CA/);
    await sim!.startCa();
    const enrolled = await node2.waitPod('demo/b-shadow', 'enrolled', 30_000);
    assert.equal(enrolled?.identity, 'spiffe://cluster.local/ns/demo/sa/shadow');
  });
});
