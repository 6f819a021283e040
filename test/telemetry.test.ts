/**
 * Telemetry as Istio reports it, end to end on the simulator: after HTTP, gRPC and TCP
 * traffic on the same node and across nodes, with mTLS (the simulation's CA) and without
 * (agents started with no CA: plaintext), both reporters' series exist with the labels
 * Istio's sidecars give (the ones Istio's dashboards read).
 *
 * Topology: deploy/examples/sim/l7's topology.yaml (no routes or policies), plus a
 * Service `s-all` with s1's HTTP, gRPC and TCP ports. c1 (node1) calls s (same node) and
 * b (node2: b1, b2). Each phase starts both agents, sends the traffic, checks, and stops
 * them; the metrics start from zero with every agent.
 */
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, SimFixture, uniqueSimName, waitFor, type AgentHandle } from '../src/sim/harness';
import { requireRoot } from './helpers/privileges';
import { accessLines, metricSum, samples, type Labels } from './helpers/telemetry';

const TOPOLOGY = join(ROOT, 'deploy', 'examples', 'sim', 'l7', 'topology.yaml');
const S_ALL = `---
apiVersion: v1
kind: Service
metadata:
  name: s-all
  namespace: demo
spec:
  selector: { app: s }
  clusterIP: 10.96.1.99
  ports:
    - { name: http, port: 80, targetPort: 8080 }
    - { name: grpc, port: 9090, targetPort: 9090, appProtocol: grpc }
    - { name: tcp, port: 9000, targetPort: 9000, appProtocol: tcp }
`;
const SA = 'spiffe://cluster.local/ns/demo/sa/default';
const TEST_TIMEOUT = 180_000;

/** Where c1's traffic goes in each placement, and who reports the destination side. */
const PLACEMENTS = {
  'same node': { host: 's-all.demo.svc.cluster.local', service: 's-all', destination: { destination_workload: 's1', destination_app: 's' }, destinationNode: 'node1' },
  'across nodes': { host: 'b.demo.svc.cluster.local', service: 'b', destination: { destination_app: 'b' }, destinationNode: 'node2' },
} as const;

describe('Istio telemetry on the simulator', { concurrency: false, timeout: 900_000 }, () => {
  let sim: SimFixture | undefined;
  let dir = '';

  before(async () => {
    if (process.getuid?.() !== 0) return;
    dir = mkdtempSync(join(tmpdir(), 'nm-telemetry-'));
    copyFileSync(TOPOLOGY, join(dir, 'topology.yaml'));
    writeFileSync(join(dir, 'topology.yaml'), readFileSync(join(dir, 'topology.yaml'), 'utf8') + S_ALL);
    sim = await new SimFixture(uniqueSimName('tm'), dir).up();
    await Promise.all(['b1', 'b2', 's1'].map((p) => sim!.startL7App(`demo/${p}`, ['--name', p])));
  });

  after(async () => {
    await sim?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Both agents (with or without the CA), every ambient pod enrolled; stopped after the phase. */
  async function agents(t: TestContext, mtls: boolean): Promise<{ node1: AgentHandle; node2: AgentHandle; log1: string; log2: string }> {
    const log1 = join(dir, `node1-${mtls ? 'mtls' : 'plain'}.log`);
    const log2 = join(dir, `node2-${mtls ? 'mtls' : 'plain'}.log`);
    const [node1, node2] = await Promise.all([
      sim!.startAgent('node1', ['--capture', 'ebpf', '--access-log', log1], sim!.source, { ca: mtls }),
      sim!.startAgent('node2', ['--capture', 'ebpf', '--access-log', log2], sim!.source, { ca: mtls }),
    ]);
    t.after(async () => { await Promise.all([node1.stop(), node2.stop()]); });
    for (const p of ['c1', 's1']) await node1.waitPod(`demo/${p}`, 'enrolled', 30_000);
    for (const p of ['b1', 'b2']) await node2.waitPod(`demo/${p}`, 'enrolled', 30_000);
    return { node1, node2, log1, log2 };
  }

  /** HTTP, gRPC and TCP from c1 to one placement's Service. */
  async function traffic(host: string): Promise<void> {
    const http = await sim!.l7Client('demo/c1', ['http', `http://${host}/telemetry`, '--count', '3']);
    assert.deepEqual(http.statuses, { 200: 3 }, JSON.stringify(http));
    const grpc = await sim!.l7Client('demo/c1', ['grpc', `${host}:9090`, 'unary', '--message', 'm', '--calls', '3']);
    assert.deepEqual(grpc.codes, { 0: 3 }, JSON.stringify(grpc));
    const tcp = await sim!.client('demo/c1', host, 9000, 'raw bytes');
    assert.match(tcp.reply ?? '', /raw bytes$/, JSON.stringify(tcp));
  }

  /** The labels Istio gives each reporter for c1's traffic to `service`. */
  function expected(reporter: 'source' | 'destination', mtls: boolean, placement: (typeof PLACEMENTS)[keyof typeof PLACEMENTS]): Labels {
    return {
      reporter,
      source_workload: 'c1',
      source_workload_namespace: 'demo',
      source_app: 'c1',
      source_version: 'unknown',
      source_canonical_service: 'c1',
      source_canonical_revision: 'latest',
      source_cluster: 'Kubernetes',
      ...placement.destination,
      destination_workload_namespace: 'demo',
      destination_service: `${placement.service}.demo.svc.cluster.local`,
      destination_service_name: placement.service,
      destination_service_namespace: 'demo',
      destination_canonical_service: placement.destination.destination_app,
      destination_cluster: 'Kubernetes',
      // Principals only when mTLS proved them; the policy as each side sees it.
      source_principal: mtls ? SA : 'unknown',
      destination_principal: mtls ? SA : 'unknown',
      connection_security_policy: reporter === 'source' ? 'unknown' : mtls ? 'mutual_tls' : 'none',
    };
  }

  for (const mtls of [true, false]) {
    test(`${mtls ? 'with mTLS' : 'plaintext (no CA)'}: HTTP, gRPC and TCP on the same node and across nodes are reported by both reporters with Istio's labels`, { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
      if (!requireRoot(t)) return;
      const { node1, node2, log1, log2 } = await agents(t, mtls);
      for (const placement of Object.values(PLACEMENTS)) await traffic(placement.host);
      const metricsOf = async () => ({ node1: await node1.metrics(), node2: await node2.metrics() });
      // TCP is recorded when the connection has closed on both halves: wait for it.
      await waitFor('both reporters to record the TCP connections', async () => {
        const m = await metricsOf();
        return Object.values(PLACEMENTS).every((p) => metricSum(m.node1, 'istio_tcp_connections_closed_total', expected('source', mtls, p)) >= 1
          && metricSum(m[p.destinationNode], 'istio_tcp_connections_closed_total', expected('destination', mtls, p)) >= 1) ? true : undefined;
      }, 20_000).catch(async (err: Error) => {
        const m = await metricsOf();
        throw new Error(`${err.message}\nnode1:\n${grep(m.node1, 'istio_tcp_connections_closed_total')}\nnode2:\n${grep(m.node2, 'istio_tcp_connections_closed_total')}`);
      });
      const m = await metricsOf();
      for (const [name, placement] of Object.entries(PLACEMENTS)) {
        for (const reporter of ['source', 'destination'] as const) {
          const text = reporter === 'source' ? m.node1 : m[placement.destinationNode];
          const want = expected(reporter, mtls, placement);
          const what = `${name}, reporter=${reporter}`;
          const http = { ...want, request_protocol: 'http', response_code: '200', response_flags: '-' };
          assert.equal(metricSum(text, 'istio_requests_total', http), 3, `${what}: HTTP\n${grep(text, 'istio_requests_total')}`);
          assert.equal(metricSum(text, 'istio_request_duration_milliseconds_count', http), 3, `${what}: HTTP duration`);
          assert.equal(metricSum(text, 'istio_request_bytes_count', http), 3, `${what}: HTTP request bytes`);
          assert.equal(metricSum(text, 'istio_response_bytes_count', http), 3, `${what}: HTTP response bytes`);
          const grpc = { ...want, request_protocol: 'grpc', response_code: '200', grpc_response_status: '0' };
          assert.equal(metricSum(text, 'istio_requests_total', grpc), 3, `${what}: gRPC\n${grep(text, 'istio_requests_total')}`);
          const tcp = { ...want, request_protocol: 'tcp' };
          assert.equal(metricSum(text, 'istio_tcp_connections_opened_total', tcp), 1, `${what}: TCP\n${grep(text, 'istio_tcp_connections_opened_total')}`);
          assert.ok(metricSum(text, 'istio_tcp_received_bytes_total', tcp) >= 'raw bytes'.length, `${what}: TCP bytes from the client`);
          assert.ok(metricSum(text, 'istio_tcp_sent_bytes_total', tcp) > 'raw bytes'.length, `${what}: TCP bytes toward the client (the app's reply)`);
        }
      }
      // Nothing reported without its Service, and no plaintext series claims a principal.
      for (const text of [m.node1, m.node2]) {
        for (const name of ['istio_requests_total', 'istio_tcp_connections_opened_total']) {
          assert.equal(metricSum(text, name, { destination_service: 'unknown' }), 0, `${name} with destination_service="unknown":\n${grep(text, name)}`);
          if (!mtls) assert.ok(samples(text, name).every((s) => s.labels['source_principal'] === 'unknown' && s.labels['destination_principal'] === 'unknown'), `${name}: a principal without mTLS`);
        }
        assert.deepEqual(samples(text, 'istio_build').map((s) => [s.labels['component'], s.value]), [['proxy', 1]]);
      }
      // The access log agrees with the metrics: a line per reporter and request.
      const httpLines = (file: string, reporter: string) => accessLines(file).filter((l) => l.kind === 'http' && l.path === '/telemetry' && l.reporter === reporter);
      await waitFor('access-log lines of both reporters', () => (httpLines(log1, 'source').length >= 6 && httpLines(log1, 'destination').length >= 3 && httpLines(log2, 'destination').length >= 3 ? true : undefined), 10_000);
      for (const l of [...httpLines(log1, 'destination'), ...httpLines(log2, 'destination')]) {
        assert.equal(l.connection_security_policy, mtls ? 'mutual_tls' : 'none');
        assert.equal(l.source_principal, mtls ? SA : null);
        assert.equal(l.source_workload, 'c1');
      }
      for (const l of httpLines(log1, 'source')) assert.equal(l.connection_security_policy, 'unknown');
    });
  }
});

function grep(text: string, name: string): string {
  return text.split('\n').filter((l) => l.startsWith(name)).join('\n');
}
