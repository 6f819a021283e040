import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer, type AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { DEFAULT_CAPTURE_SETTINGS } from '../../capture/settings';
import { MeshSnapshot } from '../../config/snapshot';
import type { ServiceInfo } from '../../mesh/model';
import { testPod } from '../../mesh/testing';
import { LoopbackNetwork } from '../loopback-network';
import { NodeProxy } from '../node/node-proxy';

/**
 * The destination reports what it receives as a destination sidecar does, without any
 * authorization policy asking for L7: plaintext HTTP on 15006 is parsed and each request
 * reported (reporter="destination", the Service serving the pod's port, no principal,
 * connection_security_policy "none"); a port its Service declares TCP is relayed at once
 * and reported as TCP. Without root: the pod's "namespace" is loopback.
 */

async function setup(t: TestContext) {
  const app = createHttpServer((req, res) => res.end(`app saw ${req.method} ${req.url}`));
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  const appPort = (app.address() as AddressInfo).port;
  const echo = createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  const echoPort = (echo.address() as AddressInfo).port;
  const registry = new Registry();
  const proxy = new NodeProxy(registry, DEFAULT_CAPTURE_SETTINGS, { sniffTimeoutMs: 50 });
  const server = testPod('server', { labels: { app: 'server' }, annotations: { 'nodemesh.dev/mode': 'ambient' }, nodeName: 'node1', ips: ['127.0.0.1'], serviceAccount: 'server', containerPorts: [{ name: 'http', port: appPort, protocol: 'TCP' }, { name: 'tcp-echo', port: echoPort, protocol: 'TCP' }] });
  const services: ServiceInfo[] = [
    { name: 'server', namespace: 'demo', clusterIPs: ['10.96.0.10'], ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }, { name: 'echo', port: 9000, targetPort: 'tcp-echo', protocol: 'TCP', appProtocol: 'tcp' }], selector: { app: 'server' } },
  ];
  proxy.updateSnapshot(MeshSnapshot.from({ namespaces: [], pods: [server], services, others: [] }, 1));
  const network = new LoopbackNetwork();
  await proxy.addPod(server, network);
  t.after(async () => {
    await proxy.close(0);
    await new Promise((r) => app.close(r));
    await new Promise((r) => echo.close(r));
  });
  const inbound = network.portFor(DEFAULT_CAPTURE_SETTINGS.inboundPort);
  /** Writes `bytes` to the pod's 15006 as if captured for `port`, reads until the proxy closes or `until` matches. */
  const send = (port: number, bytes: string, until: RegExp) => {
    network.original = { family: 4, address: '127.0.0.1', port };
    return new Promise<{ got: string; ms: number }>((resolve, reject) => {
      const started = Date.now();
      const s = connect(inbound, '127.0.0.1', () => s.write(bytes));
      let got = '';
      const timer = setTimeout(() => { s.destroy(); reject(new Error(`no answer matching ${until}: ${JSON.stringify(got)}`)); }, 10_000);
      const done = () => { clearTimeout(timer); s.destroy(); resolve({ got, ms: Date.now() - started }); };
      s.on('data', (c) => { got += c; if (until.test(got)) done(); });
      s.on('end', done);
      s.on('error', (err) => { clearTimeout(timer); reject(err); });
    });
  };
  return { registry, send, appPort, echoPort };
}

function line(text: string, name: string, contains: string[]): string | undefined {
  return text.split('\n').find((l) => l.startsWith(`${name}{`) && contains.every((c) => l.includes(c)));
}

test('plaintext HTTP on 15006 is parsed and each request reported by the destination, with the Service serving the port and no principal', async (t) => {
  const { registry, send, appPort } = await setup(t);
  const { got } = await send(appPort, 'GET /a HTTP/1.1\r\nhost: server\r\n\r\nGET /b HTTP/1.1\r\nhost: server\r\n\r\n', /app saw GET \/b/);
  assert.match(got, /app saw GET \/a[^]*app saw GET \/b$/);
  const metrics = await registry.metrics();
  const requests = line(metrics, 'istio_requests_total', ['reporter="destination"', 'response_code="200"']);
  assert.ok(requests?.endsWith('} 2'), `two requests: ${requests}`);
  for (const label of ['destination_workload="server"', 'destination_service="server.demo.svc.cluster.local"', 'destination_service_name="server"', 'source_principal="unknown"', 'destination_principal="unknown"', 'connection_security_policy="none"', 'destination_cluster="Kubernetes"']) {
    assert.ok(requests!.includes(label), `${label} in ${requests}`);
  }
  assert.equal(line(metrics, 'istio_tcp_connections_opened_total', []), undefined, 'an HTTP connection is not reported as TCP');
});

test('a port its Service declares TCP is relayed at once (no sniffing) and reported as TCP by the destination', async (t) => {
  const { registry, send, echoPort } = await setup(t);
  // Bytes that sniff as HTTP come back as the echo sent them: relayed, neither sniffed nor parsed.
  const { got } = await send(echoPort, 'GET / HTTP/1.1\r\nhost: x\r\n\r\n', /\r\n\r\n$/);
  assert.equal(got, 'GET / HTTP/1.1\r\nhost: x\r\n\r\n', 'relayed as bytes, even though it looks like HTTP');
  const opened = line(await registry.metrics(), 'istio_tcp_connections_opened_total', ['reporter="destination"']);
  assert.ok(opened?.includes('destination_service="server.demo.svc.cluster.local"'), `${opened}`);
  assert.ok(opened?.includes('connection_security_policy="none"'), `${opened}`);
  assert.equal(line(await registry.metrics(), 'istio_requests_total', []), undefined);
});
