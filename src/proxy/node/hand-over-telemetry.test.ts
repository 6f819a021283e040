import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpServer, request } from 'node:http';
import { connect, createServer, type AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { Registry } from 'prom-client';
import { DEFAULT_CAPTURE_SETTINGS } from '../../capture/settings';
import { parseK8sYaml } from '../../config/k8s-yaml';
import { convertObjects } from '../../config/objects';
import { MeshSnapshot } from '../../config/snapshot';
import type { CredentialLookup } from '../../identity/workload-certificates';
import type { ServiceInfo } from '../../mesh/model';
import { testPod } from '../../mesh/testing';
import { pollUntil } from '../../util/deadline';
import { LoopbackNetwork } from '../loopback-network';
import { NodeProxy } from './node-proxy';

/**
 * The same-node hand-over reports both sides (src/telemetry/reporter.ts): a request from
 * an enrolled pod to an enrolled pod of the same node crosses the proxy once, and that one
 * pass records one source and one destination sample per request (per attempt, for the
 * destination), with Istio's security labels. Without root: both pods' "namespaces" are
 * loopback, the server pod at 127.0.0.3 where its app listens.
 */

const settings = { ...DEFAULT_CAPTURE_SETTINGS, captureInbound: false };
const SERVER_IP = '127.0.0.3';
/** A CA-less stand-in for the agent's certificates: what the hand-over asks is only whether there are any. */
const IDENTITY: CredentialLookup = { current: () => undefined, on: () => undefined };

const ROUTE_WITH_RETRY = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: server-retry, namespace: demo }
spec:
  parentRefs: [{ group: "", kind: Service, name: server, port: 80 }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /flaky } }]
      backendRefs: [{ name: server, port: 80 }]
      retry: { codes: [503], attempts: 2 }
    - backendRefs: [{ name: server, port: 80 }]
`;

async function setup(t: TestContext, options: { identity?: boolean } = {}) {
  let flaky = 0;
  const app = createHttpServer((req, res) => {
    if (req.url === '/flaky' && flaky++ === 0) {
      res.statusCode = 503;
      res.end('not yet');
      return;
    }
    res.end(`app saw ${req.url}`);
  });
  await new Promise<void>((r) => app.listen(0, SERVER_IP, r));
  const appPort = (app.address() as AddressInfo).port;
  const echo = createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, SERVER_IP, r));
  const echoPort = (echo.address() as AddressInfo).port;
  const registry = new Registry();
  const accessLog = new PassThrough();
  let logged = '';
  accessLog.on('data', (c: Buffer) => { logged += c.toString(); });
  const proxy = new NodeProxy(registry, settings, { nodeName: 'node1', sniffTimeoutMs: 50, accessLog, ...(options.identity ? { identity: IDENTITY } : {}) });
  const mesh = { labels: {}, annotations: { 'nodemesh.dev/mode': 'ambient' }, nodeName: 'node1' };
  const client = testPod('client', { ...mesh, labels: { app: 'client' }, ips: ['127.0.0.1'], serviceAccount: 'client' });
  const server = testPod('server', { ...mesh, labels: { app: 'server', version: 'v1' }, ips: [SERVER_IP], serviceAccount: 'server', containerPorts: [{ name: 'http', port: appPort, protocol: 'TCP' }, { name: 'tcp-echo', port: echoPort, protocol: 'TCP' }] });
  const services: ServiceInfo[] = [
    { name: 'server', namespace: 'demo', clusterIPs: ['10.96.0.10'], ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }], selector: { app: 'server' } },
    { name: 'echo', namespace: 'demo', clusterIPs: ['10.96.0.12'], ports: [{ name: 'tcp-echo', port: 9000, targetPort: 'tcp-echo', protocol: 'TCP' }], selector: { app: 'server' } },
  ];
  const others = convertObjects(parseK8sYaml(ROUTE_WITH_RETRY, 'route.yaml').objects).others;
  proxy.updateSnapshot(MeshSnapshot.from({ namespaces: [], pods: [client, server], services, others }, 1));
  assert.deepEqual(proxy.describeConfig([]).rejected, []);
  const clientNetwork = new LoopbackNetwork();
  await proxy.addPod(client, clientNetwork);
  await proxy.addPod(server, new LoopbackNetwork());
  t.after(async () => {
    await proxy.close(0);
    await new Promise((r) => app.close(r));
    await new Promise((r) => echo.close(r));
  });
  const outbound = clientNetwork.portFor(settings.outboundPort);
  return {
    registry,
    get: (path: string) => {
      clientNetwork.original = { family: 4, address: '10.96.0.10', port: 80 };
      return new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: outbound, path, agent: false, headers: { host: 'server.demo' } }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => { body += c; });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.setTimeout(10_000, () => req.destroy(new Error('no response within 10 s')));
        req.on('error', reject);
        req.end();
      });
    },
    echo: (bytes: string) => {
      clientNetwork.original = { family: 4, address: '10.96.0.12', port: 9000 };
      return new Promise<string>((resolve, reject) => {
        const s = connect(outbound, '127.0.0.1', () => s.end(bytes));
        let got = '';
        s.on('data', (c) => { got += c; });
        s.on('end', () => resolve(got));
        s.on('error', reject);
      });
    },
    accessLines: () => logged.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

type Series = { labels: Record<string, string>; value: number };

/** The samples named `sample` (a histogram's `_count`...) of the metric `name`. */
async function series(registry: Registry, name: string, sample = name): Promise<Series[]> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  return ((metric?.values ?? []) as Array<{ labels: Record<string, string | number>; value: number; metricName?: string }>)
    .filter((v) => (v.metricName ?? name) === sample)
    .map((v) => ({ labels: Object.fromEntries(Object.entries(v.labels).map(([k, x]) => [k, String(x)])), value: v.value }));
}

function sum(all: Series[], want: Record<string, string>): number {
  return all.filter((s) => Object.entries(want).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0);
}

test('an HTTP request handed over on the node is recorded once as source and once as destination, with the same workloads and Service', async (t) => {
  const { registry, get, accessLines } = await setup(t);
  assert.deepEqual(await get('/hello'), { status: 200, body: 'app saw /hello' });
  const requests = await series(registry, 'istio_requests_total');
  const both = { source_workload: 'client', destination_workload: 'server', destination_version: 'v1', destination_service: 'server.demo.svc.cluster.local', destination_service_name: 'server', response_code: '200', request_protocol: 'http', source_cluster: 'Kubernetes', destination_cluster: 'Kubernetes' };
  assert.equal(sum(requests, { reporter: 'source', ...both }), 1);
  assert.equal(sum(requests, { reporter: 'destination', ...both }), 1);
  assert.equal(sum(requests, {}), 2, 'nothing else counted');
  // No CA: plaintext as far as Istio's labels go.
  const destination = requests.find((s) => s.labels['reporter'] === 'destination')!;
  assert.deepEqual([destination.labels['connection_security_policy'], destination.labels['source_principal'], destination.labels['destination_principal']], ['none', 'unknown', 'unknown']);
  assert.equal(requests.find((s) => s.labels['reporter'] === 'source')!.labels['connection_security_policy'], 'unknown');
  assert.equal(sum(await series(registry, 'istio_request_duration_milliseconds', 'istio_request_duration_milliseconds_count'), { reporter: 'destination', ...both }), 1);
  await pollUntil(() => accessLines().length >= 2, Date.now() + 5000);
  const lines = accessLines();
  assert.deepEqual(lines.map((l) => l.reporter).sort(), ['destination', 'source'], 'one access-log line per reporter');
  for (const l of lines) {
    assert.equal(l.destination_service, 'server.demo.svc.cluster.local');
    assert.equal(l.source_principal, null);
  }
  assert.equal(lines.find((l) => l.reporter === 'destination')!.connection_security_policy, 'none');
});

test('with certificates the hand-over is mutual TLS: principals on both reporters, mutual_tls on the destination\'s', async (t) => {
  const { registry, get } = await setup(t, { identity: true });
  assert.equal((await get('/hello')).status, 200);
  const requests = await series(registry, 'istio_requests_total');
  const principals = { source_principal: 'spiffe://cluster.local/ns/demo/sa/client', destination_principal: 'spiffe://cluster.local/ns/demo/sa/server' };
  assert.equal(sum(requests, { reporter: 'destination', connection_security_policy: 'mutual_tls', ...principals }), 1);
  assert.equal(sum(requests, { reporter: 'source', connection_security_policy: 'unknown', ...principals }), 1);
});

test('a retried attempt reaches the destination too: one source sample, one destination sample per attempt', async (t) => {
  const { registry, get } = await setup(t);
  assert.deepEqual(await get('/flaky'), { status: 200, body: 'app saw /flaky' });
  const requests = await series(registry, 'istio_requests_total');
  assert.equal(sum(requests, { reporter: 'source' }), 1);
  assert.equal(sum(requests, { reporter: 'source', response_code: '200' }), 1);
  assert.equal(sum(requests, { reporter: 'destination', response_code: '503', response_flags: '-' }), 1);
  assert.equal(sum(requests, { reporter: 'destination', response_code: '200', response_flags: '-' }), 1);
});

test('a TCP connection handed over on the node is recorded by both reporters, with its Service', async (t) => {
  const { registry, echo } = await setup(t);
  assert.equal(await echo('ping'), 'ping');
  const want = { source_workload: 'client', destination_workload: 'server', destination_service: 'echo.demo.svc.cluster.local', request_protocol: 'tcp' };
  // Recorded when both halves have closed, which may be just after the client saw the end.
  let closed = 0;
  for (const deadline = Date.now() + 5000; Date.now() < deadline && closed < 2; await new Promise((r) => setTimeout(r, 20))) {
    closed = sum(await series(registry, 'istio_tcp_connections_closed_total'), want);
  }
  assert.equal(closed, 2, 'both reporters closed the connection');
  assert.equal(sum(await series(registry, 'istio_tcp_connections_opened_total'), { ...want, reporter: 'source', connection_security_policy: 'unknown' }), 1);
  assert.equal(sum(await series(registry, 'istio_tcp_connections_opened_total'), { ...want, reporter: 'destination', connection_security_policy: 'none' }), 1);
  // Received: from the client (4 bytes); sent: toward it (the echo).
  assert.equal(sum(await series(registry, 'istio_tcp_received_bytes_total'), { ...want, reporter: 'destination' }), 4);
  assert.equal(sum(await series(registry, 'istio_tcp_sent_bytes_total'), { ...want, reporter: 'destination' }), 4);
});
