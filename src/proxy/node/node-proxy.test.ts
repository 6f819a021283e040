import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpServer, request, type Server as HttpServer } from 'node:http';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { Registry } from 'prom-client';
import { DEFAULT_CAPTURE_SETTINGS } from '../../capture/settings';
import { parseK8sYaml } from '../../config/k8s-yaml';
import { convertObjects, type OtherObject } from '../../config/objects';
import { MeshSnapshot } from '../../config/snapshot';
import type { PodInfo, ServiceInfo } from '../../mesh/model';
import { testPod } from '../../mesh/testing';
import { pollUntil } from '../../util/deadline';
import { LoopbackNetwork } from '../loopback-network';
import { PROBE_REPLY_PREFIX } from '../outbound/probe';
import { NodeProxy } from './node-proxy';

/**
 * The node proxy end to end without root: one enrolled pod whose "namespace" is loopback,
 * an app server behind a Service, requests through the pod's outbound listener.
 */

const settings = { ...DEFAULT_CAPTURE_SETTINGS, captureInbound: false };

function pod(name: string, ips: string[], port: number): PodInfo {
  return testPod(name, { labels: { app: name }, annotations: { 'nodemesh.dev/mode': 'ambient' }, nodeName: 'node1', ips, serviceAccount: name, containerPorts: [{ name: 'http', port, protocol: 'TCP' }] });
}

function listen<T extends Server | HttpServer>(server: T, host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve) => server.listen(0, host, () => resolve((server.address() as AddressInfo).port)));
}

function get(port: number, path: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, headers: { host: 'server.demo' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('no response within 10 s')));
    req.on('error', reject);
    req.end();
  });
}

async function setup(t: import('node:test').TestContext, others: OtherObject[] = []) {
  const app = createHttpServer((req, res) => res.end(`app saw ${req.url} x-request-id=${req.headers['x-request-id'] ? 'set' : 'missing'}${req.headers['x-route'] ? ` x-route=${String(req.headers['x-route'])}` : ''}`));
  const appPort = await listen(app);
  const registry = new Registry();
  const proxy = new NodeProxy(registry, settings, { sniffTimeoutMs: 50 });
  const client = pod('client', ['127.0.0.1'], 1);
  const server = pod('server', ['127.0.0.1'], appPort);
  const service: ServiceInfo = { name: 'server', namespace: 'demo', clusterIPs: ['10.96.0.10'], ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }, ], selector: { app: 'server' } };
  const nobody: ServiceInfo = { name: 'nobody', namespace: 'demo', clusterIPs: ['10.96.0.11'], ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'TCP' }], selector: { app: 'nobody' } };
  proxy.updateSnapshot(MeshSnapshot.from({ namespaces: [], pods: [client, server], services: [service, nobody], others }, 1));
  const network = new LoopbackNetwork();
  await proxy.addPod(client, network);
  t.after(async () => {
    await proxy.close(0);
    await new Promise((r) => app.close(r));
  });
  return { proxy, registry, network, outbound: network.portFor(settings.outboundPort), appPort };
}

test('an HTTP request to a Service is routed to its endpoint, given a request id, and counted', async (t) => {
  const { registry, network, outbound } = await setup(t);
  network.original = { family: 4, address: '10.96.0.10', port: 80 };
  const res = await get(outbound, '/hello');
  assert.equal(res.status, 200);
  assert.equal(res.body, 'app saw /hello x-request-id=set');
  const metrics = await registry.metrics();
  const line = metrics.split('\n').find((l) => l.startsWith('istio_requests_total{'));
  assert.ok(line?.endsWith('} 1'), `one request counted: ${line}`);
  assert.match(line!, /response_code="200"/);
  assert.match(line!, /destination_service="server\.demo\.svc\.cluster\.local"/);
  // Plaintext to a pod not served here: no principal is proven, and the source side reports no policy.
  assert.match(line!, /source_principal="unknown"/);
  assert.match(line!, /destination_principal="unknown"/);
  assert.match(line!, /connection_security_policy="unknown"/);
  assert.match(line!, /source_cluster="Kubernetes"/);
});

test('a Service port with no ready endpoint answers 503 with the UH flag', async (t) => {
  const { network, outbound } = await setup(t);
  network.original = { family: 4, address: '10.96.0.11', port: 80 };
  const res = await get(outbound, '/');
  assert.equal(res.status, 503);
  assert.equal(res.headers['x-nodemesh-flags'], 'UH');
  assert.match(res.body, /no healthy upstream for demo\/nobody:80/);
});

test('a connection outside the mesh is relayed as bytes, and the capture self-test is answered by the proxy', async (t) => {
  const { proxy, network, outbound } = await setup(t);
  const echo = createServer((s) => s.pipe(s));
  // 127.0.0.2: an address no pod of the snapshot has (outside the mesh).
  const echoPort = await listen(echo, '127.0.0.2');
  t.after(() => new Promise((r) => echo.close(r)));
  network.original = { family: 4, address: '127.0.0.2', port: echoPort };
  const echoed = await new Promise<string>((resolve, reject) => {
    const s = connect(outbound, '127.0.0.1', () => s.end('raw bytes'));
    let got = '';
    s.on('data', (c) => { got += c; });
    s.on('end', () => resolve(got));
    s.on('error', reject);
  });
  assert.equal(echoed, 'raw bytes');
  // The record is written when both halves have closed, which may be just after the client saw the end.
  const logged = await pollUntil(() => proxy.log.list().some((r) => r.resolution === 'passthrough' && r.bytesUp === 9), Date.now() + 10_000);
  assert.ok(logged, 'the relayed connection is in the connection log with its bytes');

  network.original = { family: 4, address: '127.0.0.1', port: settings.probePort };
  const reply = await new Promise<string>((resolve, reject) => {
    const s = connect(outbound, '127.0.0.1');
    let got = '';
    s.on('data', (c) => { got += c; });
    s.on('end', () => { s.end(); resolve(got); });
    s.on('error', reject);
  });
  assert.equal(reply, `${PROBE_REPLY_PREFIX} demo/client\n`);
});

test('a connection with no original destination is refused and logged with the reason', async (t) => {
  const { proxy, network, outbound } = await setup(t);
  network.original = undefined;
  await new Promise<void>((resolve) => {
    const s = connect(outbound, '127.0.0.1');
    s.on('error', () => resolve());
    s.on('close', () => resolve());
  });
  const record = proxy.log.list().find((r) => r.result === 'error');
  assert.match(record?.error ?? '', /no original destination/);
});

test('an HTTPRoute routes by path with its header filter, and a request no rule matches is 404 NR', async (t) => {
  const route = parseK8sYaml(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: server-v1, namespace: demo }
spec:
  parentRefs: [{ group: "", kind: Service, name: server, port: 80 }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /v1 } }]
      filters: [{ type: RequestHeaderModifier, requestHeaderModifier: { add: [{ name: x-route, value: v1 }] } }]
      backendRefs: [{ name: server, port: 80 }]
`, 'route.yaml');
  const { others, rejected } = convertObjects(route.objects);
  assert.deepEqual(rejected, []);
  const { proxy, network, outbound } = await setup(t, others);
  assert.deepEqual(proxy.describeConfig([]).rejected, [], 'the route is accepted');
  network.original = { family: 4, address: '10.96.0.10', port: 80 };
  const routed = await get(outbound, '/v1/items');
  assert.equal(routed.status, 200);
  assert.equal(routed.body, 'app saw /v1/items x-request-id=set x-route=v1');
  const unmatched = await get(outbound, '/v2/items');
  assert.equal(unmatched.status, 404);
  assert.equal(unmatched.headers['x-nodemesh-flags'], 'NR');
  assert.match(unmatched.body, /no route of demo\/server matches GET \/v2\/items/);
});
