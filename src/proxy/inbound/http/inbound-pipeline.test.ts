import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import { connect as h2connect } from 'node:http2';
import { connect, type AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { Registry } from 'prom-client';
import { DEFAULT_CAPTURE_SETTINGS } from '../../../capture/settings';
import { parseK8sYaml } from '../../../config/k8s-yaml';
import { convertObjects } from '../../../config/objects';
import { MeshSnapshot } from '../../../config/snapshot';
import { testPod } from '../../../mesh/testing';
import { istioPolicy } from '../../../policy/server/authorization/testing';
import { pollUntil } from '../../../util/deadline';
import { LoopbackNetwork } from '../../loopback-network';
import { NodeProxy } from '../../node/node-proxy';

/**
 * L7 authorization on the inbound side without root: one enrolled pod whose "namespace"
 * is loopback, its app behind it, plaintext clients on its 15006 listener (the original
 * destination is the app), policies with HTTP rules so that the proxy parses HTTP.
 */

const POLICIES =
  istioPolicy('demo', 'deny-admin', '{ action: DENY, rules: [{ to: [{ operation: { paths: ["/admin", "/admin/*", "/pkg.Admin/*"] } }] }] }') +
  istioPolicy('demo', 'audit-reports', '{ action: AUDIT, rules: [{ to: [{ operation: { paths: ["/reports*"] } }] }] }');

async function setup(t: TestContext) {
  const app = createHttpServer((req, res) => res.end(`app saw ${req.method} ${req.url}`));
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  const appPort = (app.address() as AddressInfo).port;
  const registry = new Registry();
  const accessLog = new PassThrough();
  let logged = '';
  accessLog.on('data', (c: Buffer) => { logged += c.toString(); });
  const proxy = new NodeProxy(registry, DEFAULT_CAPTURE_SETTINGS, { sniffTimeoutMs: 50, accessLog });
  const server = testPod('server', { labels: { app: 'server' }, annotations: { 'nodemesh.dev/mode': 'ambient' }, nodeName: 'node1', ips: ['127.0.0.1'], serviceAccount: 'server', containerPorts: [{ name: 'http', port: appPort, protocol: 'TCP' }] });
  const parsed = parseK8sYaml(POLICIES, 'authz.yaml');
  proxy.updateSnapshot(MeshSnapshot.from({ namespaces: [], pods: [server], services: [], others: convertObjects(parsed.objects).others }, 1));
  assert.deepEqual(proxy.config.current.rejected, []);
  const network = new LoopbackNetwork();
  network.original = { family: 4, address: '127.0.0.1', port: appPort };
  await proxy.addPod(server, network);
  t.after(async () => {
    await proxy.close(0);
    await new Promise((r) => app.close(r));
  });
  return { proxy, registry, inbound: network.portFor(DEFAULT_CAPTURE_SETTINGS.inboundPort), accessLines: () => logged.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

/** The value once `get` has one (polled; the access log is written asynchronously). */
async function eventually<T>(get: () => T | undefined): Promise<T | undefined> {
  let value: T | undefined;
  await pollUntil(() => (value = get()) !== undefined, Date.now() + 5000);
  return value;
}

/** Writes raw bytes on one connection and reads until the proxy closes it or `until` matches. */
function raw(port: number, bytes: string, until: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.write(bytes));
    let got = '';
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`no answer matching ${until} within 10 s: ${JSON.stringify(got)}`)); }, 10_000);
    const done = () => { clearTimeout(timer); s.destroy(); resolve(got); };
    s.on('data', (c) => { got += c; if (until.test(got)) done(); });
    s.on('end', done);
    s.on('error', (err) => { clearTimeout(timer); reject(err); });
  });
}

test('a DENY on /admin refuses GET /admin with Envoy\'s 403 and lets GET / through, on one keep-alive connection; counted and logged with the policy', async (t) => {
  const { registry, inbound, accessLines } = await setup(t);
  const both = await raw(inbound, 'GET / HTTP/1.1\r\nhost: server\r\n\r\nGET /admin HTTP/1.1\r\nhost: server\r\n\r\nGET /ok HTTP/1.1\r\nhost: server\r\n\r\n', /app saw GET \/ok/);
  assert.match(both, /^HTTP\/1\.1 200 [^]*app saw GET \/HTTP\/1\.1 403 [^]*\r\n\r\nRBAC: access denied(HTTP\/1\.1 200)[^]*app saw GET \/ok$/);
  for (const [request, label] of [
    ['PURGE /admin HTTP/1.1\r\nhost: server\r\n\r\n', 'another method'],
    ['get /admin HTTP/1.1\r\nhost: server\r\n\r\n', 'a lower-case method'],
    ['\r\nGET /admin HTTP/1.1\r\nhost: server\r\n\r\n', 'a leading empty line'],
    ['GET http://other.test/admin HTTP/1.1\r\nhost: server\r\n\r\n', 'an absolute-form target'],
  ] as const) {
    assert.match(await raw(inbound, request, /RBAC: access denied|app saw/), /^HTTP\/1\.1 403 [^]*RBAC: access denied$/, label);
  }
  const metrics = await registry.metrics();
  assert.match(metrics, /nodemesh_authz_denied_total\{namespace="demo",pod="server",policy="demo\/deny-admin",layer="l7"\} 5/);
  assert.match(metrics, /istio_requests_total\{[^}]*reporter="destination"[^}]*response_code="403"[^}]*response_flags="-"[^}]*\} 5/);
  const denied = await eventually(() => {
    const lines = accessLines().filter((l) => l.response_code === 403);
    return lines.length >= 5 ? lines : undefined;
  });
  assert.ok(denied, 'five access-log lines for the denials');
  assert.equal(denied[0]!.response_code_details, 'rbac_access_denied_matched_policy[ns[demo]-policy[deny-admin]-rule[0]]');
  assert.equal(denied[0]!.reporter, 'destination');
  assert.equal(denied[0]!.connection_security_policy, 'none');
});

test('an AUDIT policy records the request in the access log and denies nothing', async (t) => {
  const { inbound, accessLines } = await setup(t);
  assert.match(await raw(inbound, 'GET /reports/q3 HTTP/1.1\r\nhost: server\r\n\r\n', /app saw/), /^HTTP\/1\.1 200 [^]*app saw GET \/reports\/q3$/);
  const line = await eventually(() => accessLines().find((l) => l.path === '/reports/q3'));
  assert.equal(line?.audit_policies, 'demo/audit-reports#0');
  assert.equal(line?.response_code, 200);
});

test('a denied gRPC request gets HTTP 200 with grpc-status 7 (PERMISSION_DENIED) and Envoy\'s message', async (t) => {
  const { inbound } = await setup(t);
  const session = h2connect(`http://127.0.0.1:${inbound}`);
  t.after(() => session.destroy());
  const got = await new Promise<{ status: number; trailers: Record<string, unknown> }>((resolve, reject) => {
    const stream = session.request({ ':method': 'POST', ':path': '/pkg.Admin/Drop', 'content-type': 'application/grpc', te: 'trailers' });
    let status = 0;
    stream.on('response', (h) => { status = Number(h[':status']); });
    stream.on('trailers', (trailers) => resolve({ status, trailers }));
    stream.on('error', reject);
    stream.end(Buffer.from([0, 0, 0, 0, 0]));
    stream.resume();
  });
  assert.equal(got.status, 200);
  assert.equal(got.trailers['grpc-status'], '7');
  assert.equal(decodeURIComponent(String(got.trailers['grpc-message'])), 'RBAC: access denied');
});

test('an Upgrade to a denied path is refused; one the app declines goes on as HTTP/1.1, and the next request is authorized', async (t) => {
  const { inbound } = await setup(t);
  assert.match(await raw(inbound, 'GET /admin HTTP/1.1\r\nhost: server\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n', /RBAC: access denied/), /^HTTP\/1\.1 403 [^]*RBAC: access denied$/);
  // The app (node:http without an upgrade listener) declines: the connection goes on.
  const after = await raw(inbound, 'GET /ws HTTP/1.1\r\nhost: server\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\nGET /admin HTTP/1.1\r\nhost: server\r\n\r\n', /RBAC: access denied|app saw GET \/admin/);
  assert.doesNotMatch(after, /app saw GET \/admin/);
  assert.match(after, /RBAC: access denied$/);
});
