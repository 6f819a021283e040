import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import type { PodInfo } from '../mesh/model';
import { workloadOf, type WorkloadInfo } from '../mesh/workload-identity';
import { DURATION_BUCKETS_MS, REQUEST_LABELS, SIZE_BUCKETS_BYTES, TCP_LABELS } from './istio-labels';
import { IstioMetrics, type RequestRecord } from './istio-metrics';
import { reporterForLeg } from './reporter';
import { testPod } from '../mesh/testing';

// ---------------------------------------------------------------------------------------
// Scrape helpers: parse the registry's text exposition.

interface Sample {
  name: string;
  labels: Record<string, string>;
  labelOrder: string[];
  value: number;
}

function parseLine(line: string): Sample {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
  assert.ok(m, `not a sample line: ${line}`);
  const labels: Record<string, string> = {};
  const labelOrder: string[] = [];
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const lm of (m[2] ?? '').matchAll(re)) {
    labels[lm[1]!] = lm[2]!;
    labelOrder.push(lm[1]!);
  }
  return { name: m[1]!, labels, labelOrder, value: Number(m[3]) };
}

async function scrape(registry: Registry): Promise<{ text: string; samples: Sample[] }> {
  const text = await registry.metrics();
  const samples = text
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map(parseLine);
  return { text, samples };
}

function find(samples: Sample[], name: string, where: Record<string, string> = {}): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v));
}

function one(samples: Sample[], name: string, where: Record<string, string> = {}): Sample {
  const found = find(samples, name, where);
  assert.equal(found.length, 1, `expected one ${name} ${JSON.stringify(where)}, found ${found.length}`);
  return found[0]!;
}

// ---------------------------------------------------------------------------------------
// Fixtures

function pod(name: string, labels: Record<string, string> = {}, serviceAccount = 'default', namespace = 'demo'): PodInfo {
  return testPod(name, { labels, serviceAccount, namespace });
}

const web = workloadOf(pod('web-7d9f8b6c5-x2k4q', { app: 'web', version: 'v1', 'pod-template-hash': '7d9f8b6c5' }, 'web'));
const b = workloadOf(pod('b-canary-5c7d8f9b4-q8z2m', { app: 'b', version: 'canary' }, 'b'));
const bService = Object.freeze({ name: 'b', namespace: 'demo', host: 'b.demo.svc.cluster.local' });

function request(over: Partial<RequestRecord> = {}): RequestRecord {
  return {
    reporter: 'source',
    source: web,
    destination: b,
    destinationService: bService,
    protocol: 'http',
    responseCode: 200,
    responseFlags: '-',
    durationMs: 3.2,
    requestBytes: 0,
    responseBytes: 1234,
    mtls: true,
    ...over,
  };
}

const REQUEST_METRICS = ['istio_requests_total', 'istio_request_duration_milliseconds', 'istio_request_bytes', 'istio_response_bytes'];
const TCP_METRICS = ['istio_tcp_sent_bytes_total', 'istio_tcp_received_bytes_total', 'istio_tcp_connections_opened_total', 'istio_tcp_connections_closed_total'];

const EXPECTED_REQUEST_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_canonical_service',
  'source_canonical_revision',
  'source_cluster',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_service',
  'destination_service_name',
  'destination_service_namespace',
  'destination_canonical_service',
  'destination_canonical_revision',
  'destination_cluster',
  'request_protocol',
  'response_code',
  'grpc_response_status',
  'response_flags',
  'connection_security_policy',
];
const EXPECTED_TCP_LABELS = EXPECTED_REQUEST_LABELS.filter((l) => l !== 'response_code' && l !== 'grpc_response_status');

// ---------------------------------------------------------------------------------------
// Names, types, labels

test('metric names and types are exactly Istio\'s', async () => {
  const registry = new Registry();
  const m = new IstioMetrics(registry);
  m.recordRequest(request());
  m.tcpOpened({ reporter: 'source', source: web, destination: b, destinationService: bService, mtls: true });
  m.tcpClosed({ reporter: 'source', source: web, destination: b, destinationService: bService, mtls: true, sentBytes: 1, receivedBytes: 1 });
  const { text } = await scrape(registry);
  const types = Object.fromEntries([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((x) => [x[1], x[2]]));
  assert.deepEqual(types, {
    istio_build: 'gauge',
    istio_requests_total: 'counter',
    istio_request_duration_milliseconds: 'histogram',
    istio_request_bytes: 'histogram',
    istio_response_bytes: 'histogram',
    istio_tcp_sent_bytes_total: 'counter',
    istio_tcp_received_bytes_total: 'counter',
    istio_tcp_connections_opened_total: 'counter',
    istio_tcp_connections_closed_total: 'counter',
  });
  // Every sample line belongs to one of these names (histograms with their suffixes).
  const allowed = new Set([
    'istio_build',
    ...TCP_METRICS,
    'istio_requests_total',
    ...['istio_request_duration_milliseconds', 'istio_request_bytes', 'istio_response_bytes'].flatMap((n) => [`${n}_bucket`, `${n}_sum`, `${n}_count`]),
  ]);
  for (const s of (await scrape(registry)).samples) assert.ok(allowed.has(s.name), `unexpected sample ${s.name}`);
});

test('request metrics carry exactly Istio\'s labels, in order, with the right values', async () => {
  assert.deepEqual([...REQUEST_LABELS], EXPECTED_REQUEST_LABELS);
  const registry = new Registry();
  const m = new IstioMetrics(registry, { clusterId: 'Kubernetes' });
  m.recordRequest(request());
  const { samples } = await scrape(registry);

  const total = one(samples, 'istio_requests_total');
  assert.deepEqual(total.labelOrder, EXPECTED_REQUEST_LABELS);
  assert.deepEqual(total.labels, {
    reporter: 'source',
    source_workload: 'web',
    source_workload_namespace: 'demo',
    source_principal: 'spiffe://cluster.local/ns/demo/sa/web',
    source_app: 'web',
    source_version: 'v1',
    source_canonical_service: 'web',
    source_canonical_revision: 'v1',
    source_cluster: 'Kubernetes',
    destination_workload: 'b-canary',
    destination_workload_namespace: 'demo',
    destination_principal: 'spiffe://cluster.local/ns/demo/sa/b',
    destination_app: 'b',
    destination_version: 'canary',
    destination_service: 'b.demo.svc.cluster.local',
    destination_service_name: 'b',
    destination_service_namespace: 'demo',
    destination_canonical_service: 'b',
    destination_canonical_revision: 'canary',
    destination_cluster: 'Kubernetes',
    request_protocol: 'http',
    response_code: '200',
    grpc_response_status: '',
    response_flags: '-',
    // The source side reports no policy (Istio's client side); the principals are there
    // because the leg went over mutual TLS.
    connection_security_policy: 'unknown',
  });
  assert.equal(total.value, 1);

  // The histograms have the same labels (plus le on buckets).
  for (const name of ['istio_request_duration_milliseconds', 'istio_request_bytes', 'istio_response_bytes']) {
    const count = one(samples, `${name}_count`);
    assert.deepEqual(count.labels, total.labels, name);
    assert.equal(count.value, 1);
    for (const bucket of find(samples, `${name}_bucket`)) {
      assert.deepEqual(Object.keys(bucket.labels).sort(), [...EXPECTED_REQUEST_LABELS, 'le'].sort());
    }
  }
});

test('histogram buckets are Istio\'s defaults and observations land in them', async () => {
  const registry = new Registry();
  const m = new IstioMetrics(registry);
  m.recordRequest(request({ durationMs: 3.2, requestBytes: 0, responseBytes: 1234 }));
  m.recordRequest(request({ durationMs: 700, requestBytes: 10, responseBytes: 5e8 }));
  const { samples } = await scrape(registry);

  const les = (name: string) => find(samples, `${name}_bucket`).map((s) => s.labels['le']);
  const expectedDuration = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];
  const expectedSize = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000];
  assert.deepEqual([...DURATION_BUCKETS_MS], expectedDuration);
  assert.deepEqual([...SIZE_BUCKETS_BYTES], expectedSize);
  assert.deepEqual(les('istio_request_duration_milliseconds'), [...expectedDuration.map(String), '+Inf']);
  assert.deepEqual(les('istio_request_bytes'), [...expectedSize.map(String), '+Inf']);
  assert.deepEqual(les('istio_response_bytes'), [...expectedSize.map(String), '+Inf']);

  const bucket = (name: string, le: string) => one(samples, `${name}_bucket`, { le }).value;
  // Cumulative: 3.2 ms is in le=5 and above; 700 ms in le=1000 and above.
  assert.equal(bucket('istio_request_duration_milliseconds', '1'), 0);
  assert.equal(bucket('istio_request_duration_milliseconds', '5'), 1);
  assert.equal(bucket('istio_request_duration_milliseconds', '500'), 1);
  assert.equal(bucket('istio_request_duration_milliseconds', '1000'), 2);
  assert.equal(bucket('istio_request_duration_milliseconds', '+Inf'), 2);
  assert.equal(one(samples, 'istio_request_duration_milliseconds_sum').value, 703.2);
  // Upper bounds are inclusive (le): 10 bytes is in le=10.
  assert.equal(bucket('istio_request_bytes', '1'), 1);
  assert.equal(bucket('istio_request_bytes', '10'), 2);
  // Beyond the last bound only +Inf counts it.
  assert.equal(bucket('istio_response_bytes', '100000000'), 1);
  assert.equal(bucket('istio_response_bytes', '+Inf'), 2);
  assert.equal(one(samples, 'istio_response_bytes_sum').value, 5e8 + 1234);
});

test('counters increase once per call, per label combination', async () => {
  const registry = new Registry();
  const m = new IstioMetrics(registry);
  for (let i = 0; i < 5; i++) m.recordRequest(request());
  for (let i = 0; i < 3; i++) m.recordRequest(request({ responseCode: 503, responseFlags: 'UF' }));
  m.recordRequest(request({ protocol: 'grpc', grpcStatus: 14 }));
  const { samples } = await scrape(registry);
  assert.equal(one(samples, 'istio_requests_total', { response_code: '200', request_protocol: 'http' }).value, 5);
  assert.equal(one(samples, 'istio_requests_total', { response_code: '503', response_flags: 'UF' }).value, 3);
  const grpc = one(samples, 'istio_requests_total', { request_protocol: 'grpc' });
  assert.equal(grpc.value, 1);
  assert.equal(grpc.labels['grpc_response_status'], '14');
  assert.equal(one(samples, 'istio_request_duration_milliseconds_count', { response_code: '503' }).value, 3);
  assert.equal(m.stats().requestSeries, 3);
});

test('inputs that label alike share one series', async () => {
  const registry = new Registry();
  const m = new IstioMetrics(registry);
  m.recordRequest(request({ responseFlags: '' }));
  m.recordRequest(request({ responseFlags: '-' }));
  m.recordRequest(request({ grpcStatus: 0 })); // plain http: grpc status does not apply
  m.recordRequest(request({ source: { ...web } })); // an equal, unfrozen object
  const { samples } = await scrape(registry);
  assert.equal(one(samples, 'istio_requests_total').value, 4);
  assert.equal(one(samples, 'istio_request_duration_milliseconds_count').value, 4);
});

test('TCP metrics: opened, closed, bytes; Istio\'s TCP labels', async () => {
  assert.deepEqual([...TCP_LABELS], EXPECTED_TCP_LABELS);
  const registry = new Registry();
  const m = new IstioMetrics(registry);
  const conn = { reporter: 'destination' as const, source: web, destination: b, destinationService: bService, mtls: true };
  m.tcpOpened(conn);
  m.tcpOpened(conn);
  m.tcpBytes(conn, 100, 40); // a periodic report of a long-lived connection
  m.tcpClosed({ ...conn, sentBytes: 900, receivedBytes: 60 });
  m.tcpClosed({ ...conn, sentBytes: 5, receivedBytes: 7 });
  // A failed connect: its flag appears at close only, and adds no zero "opened" series.
  m.tcpClosed({ ...conn, responseFlags: 'UF', sentBytes: 0, receivedBytes: 0 });

  const { samples } = await scrape(registry);
  const ok = { response_flags: '-' };
  assert.equal(one(samples, 'istio_tcp_connections_opened_total', ok).value, 2);
  assert.equal(one(samples, 'istio_tcp_connections_closed_total', ok).value, 2);
  assert.equal(one(samples, 'istio_tcp_sent_bytes_total', ok).value, 1005);
  assert.equal(one(samples, 'istio_tcp_received_bytes_total', ok).value, 107);
  assert.equal(one(samples, 'istio_tcp_connections_closed_total', { response_flags: 'UF' }).value, 1);
  assert.equal(find(samples, 'istio_tcp_connections_opened_total', { response_flags: 'UF' }).length, 0);

  for (const name of TCP_METRICS) {
    for (const s of find(samples, name)) {
      assert.deepEqual(s.labelOrder, EXPECTED_TCP_LABELS, name);
      assert.equal(s.labels['request_protocol'], 'tcp');
      assert.equal(s.labels['reporter'], 'destination');
      assert.equal(s.labels['connection_security_policy'], 'mutual_tls');
      assert.equal(s.labels['destination_service'], 'b.demo.svc.cluster.local');
    }
  }
  // TCP does not touch the request metrics.
  assert.equal(find(samples, 'istio_requests_total').length, 0);
});

test('unknown values become "unknown"', async () => {
  const registry = new Registry();
  const m = new IstioMetrics(registry);
  m.recordRequest({
    reporter: 'destination',
    protocol: 'grpc',
    responseCode: 0,
    responseFlags: 'DC',
    durationMs: 1,
    requestBytes: 0,
    responseBytes: 0,
  });
  // A workload known only by name and namespace.
  m.recordRequest(request({ source: { name: 'legacy', namespace: 'old' }, mtls: false }));
  m.tcpOpened({ reporter: 'source' });
  const { samples } = await scrape(registry);

  const bare = one(samples, 'istio_requests_total', { reporter: 'destination' });
  for (const label of EXPECTED_REQUEST_LABELS) {
    if (['reporter', 'request_protocol', 'response_code', 'response_flags'].includes(label)) continue;
    assert.equal(bare.labels[label], 'unknown', label);
  }
  assert.equal(bare.labels['response_code'], '0');
  assert.equal(bare.labels['response_flags'], 'DC');
  assert.equal(bare.labels['grpc_response_status'], 'unknown', 'gRPC without a status');
  assert.equal(bare.labels['connection_security_policy'], 'unknown', 'mtls not given');

  const legacy = one(samples, 'istio_requests_total', { source_workload: 'legacy' });
  assert.equal(legacy.labels['source_workload_namespace'], 'old');
  for (const l of ['source_principal', 'source_app', 'source_version', 'source_canonical_service', 'source_canonical_revision']) {
    assert.equal(legacy.labels[l], 'unknown', l);
  }
  assert.equal(legacy.labels['source_cluster'], 'Kubernetes', 'a known workload is in this cluster (Istio\'s default ID)');
  assert.equal(legacy.labels['destination_principal'], 'unknown', 'plaintext proves no principal');
  assert.equal(legacy.labels['connection_security_policy'], 'unknown', 'source side');

  const tcp = one(samples, 'istio_tcp_connections_opened_total');
  for (const label of EXPECTED_TCP_LABELS) {
    if (['reporter', 'request_protocol', 'response_flags'].includes(label)) continue;
    assert.equal(tcp.labels[label], 'unknown', label);
  }
  assert.equal(tcp.labels['response_flags'], '-');
});

test('reporter is decided by the leg; a same-node request counts once per reporter', async () => {
  assert.equal(reporterForLeg('outbound'), 'source');
  assert.equal(reporterForLeg('inbound'), 'destination');

  const registry = new Registry();
  const m = new IstioMetrics(registry);
  // Both pods on this node: the request crosses the proxy twice, once per leg, and each leg
  // records only its own reporter.
  for (let i = 0; i < 10; i++) {
    m.recordRequest(request({ reporter: reporterForLeg('outbound') }));
    m.recordRequest(request({ reporter: reporterForLeg('inbound') }));
  }
  // To a destination outside the mesh: the outbound leg only.
  m.recordRequest(request({ reporter: reporterForLeg('outbound'), destination: undefined, destinationService: undefined }));

  const { samples } = await scrape(registry);
  const sum = (reporter: string) => find(samples, 'istio_requests_total', { reporter }).reduce((a, s) => a + s.value, 0);
  assert.equal(sum('source'), 11);
  assert.equal(sum('destination'), 10);
  assert.equal(one(samples, 'istio_requests_total', { reporter: 'destination' }).labels['source_workload'], 'web');
});

test('the label cache stays bounded and evicting loses no counts', async () => {
  const registry = new Registry();
  const m = new IstioMetrics(registry, { labelCacheSize: 16 });
  const sources: WorkloadInfo[] = Array.from({ length: 50 }, (_, i) => Object.freeze({ name: `client-${i}`, namespace: 'demo' }));
  for (let round = 0; round < 3; round++) {
    for (const source of sources) {
      for (const code of [200, 500]) m.recordRequest(request({ source, responseCode: code }));
      m.tcpOpened({ reporter: 'source', source });
    }
    const s = m.stats();
    assert.ok(s.requestCacheEntries <= 16, `request cache ${s.requestCacheEntries}`);
    assert.ok(s.tcpCacheEntries <= 16, `tcp cache ${s.tcpCacheEntries}`);
    assert.equal(s.cacheCapacity, 16);
  }
  assert.equal(m.stats().requestSeries, 100);
  const { samples } = await scrape(registry);
  const totals = find(samples, 'istio_requests_total');
  assert.equal(totals.length, 100);
  for (const t of totals) assert.equal(t.value, 3, `${t.labels['source_workload']} ${t.labels['response_code']}`);
  for (const t of find(samples, 'istio_tcp_connections_opened_total')) assert.equal(t.value, 3);
});

test('an unfrozen workload object is read anew on every call', async () => {
  const registry = new Registry();
  const m = new IstioMetrics(registry);
  const mutable: WorkloadInfo = { name: 'first', namespace: 'demo' };
  m.recordRequest(request({ source: mutable }));
  mutable.name = 'second';
  m.recordRequest(request({ source: mutable }));
  const { samples } = await scrape(registry);
  assert.equal(one(samples, 'istio_requests_total', { source_workload: 'first' }).value, 1);
  assert.equal(one(samples, 'istio_requests_total', { source_workload: 'second' }).value, 1);
});

test('registry integration: reset, JSON, escaping, one instance per registry', async () => {
  const registry = new Registry();
  const m = new IstioMetrics(registry);
  m.recordRequest(request());
  registry.resetMetrics();
  assert.equal((await scrape(registry)).samples.length, 0);
  m.recordRequest(request());
  m.recordRequest(request({ source: { name: 'we"ird\\name', namespace: 'demo' } }));
  const { samples } = await scrape(registry);
  assert.equal(one(samples, 'istio_requests_total', { source_workload: 'web' }).value, 1, 'counted anew after a reset');
  assert.equal(one(samples, 'istio_requests_total', { source_workload: 'we\\"ird\\\\name' }).value, 1);

  const json = await registry.getMetricsAsJSON();
  const requests = json.find((x) => x.name === 'istio_requests_total')!;
  assert.equal(requests.values.length, 2);
  assert.equal(requests.values.find((x) => x.labels['source_workload'] === 'web')!.labels['destination_service'], 'b.demo.svc.cluster.local');
  const duration = json.find((x) => x.name === 'istio_request_duration_milliseconds')!;
  assert.ok(duration.values.some((x) => (x as { metricName?: string }).metricName === 'istio_request_duration_milliseconds_bucket' && x.labels['le'] === '+Inf'));

  assert.throws(() => new IstioMetrics(registry), /already been registered/);
  // Other metrics in the registry are untouched.
  assert.ok(REQUEST_METRICS.every((n) => registry.getSingleMetric(n)));
});

test('principals only when mTLS proved them; connection_security_policy as Istio gives it per reporter', async () => {
  const registry = new Registry();
  const m = new IstioMetrics(registry);
  m.recordRequest(request({ reporter: 'destination', mtls: true }));
  m.recordRequest(request({ reporter: 'destination', mtls: false }));
  m.recordRequest(request({ reporter: 'source', mtls: false }));
  m.tcpOpened({ reporter: 'destination', source: web, destination: b, mtls: false });
  m.tcpOpened({ reporter: 'source', source: web, destination: b, mtls: true });
  const { samples } = await scrape(registry);
  const mutual = one(samples, 'istio_requests_total', { reporter: 'destination', connection_security_policy: 'mutual_tls' });
  assert.equal(mutual.labels['source_principal'], 'spiffe://cluster.local/ns/demo/sa/web');
  assert.equal(mutual.labels['destination_principal'], 'spiffe://cluster.local/ns/demo/sa/b');
  const plain = one(samples, 'istio_requests_total', { reporter: 'destination', connection_security_policy: 'none' });
  assert.equal(plain.labels['source_principal'], 'unknown');
  assert.equal(plain.labels['destination_principal'], 'unknown');
  assert.equal(plain.labels['source_workload'], 'web', 'the workloads are still named');
  const sourcePlain = one(samples, 'istio_requests_total', { reporter: 'source' });
  assert.equal(sourcePlain.labels['connection_security_policy'], 'unknown');
  assert.equal(sourcePlain.labels['destination_principal'], 'unknown');
  const tcpPlain = one(samples, 'istio_tcp_connections_opened_total', { reporter: 'destination' });
  assert.deepEqual([tcpPlain.labels['source_principal'], tcpPlain.labels['connection_security_policy']], ['unknown', 'none']);
  const tcpSource = one(samples, 'istio_tcp_connections_opened_total', { reporter: 'source' });
  assert.deepEqual([tcpSource.labels['destination_principal'], tcpSource.labels['connection_security_policy']], ['spiffe://cluster.local/ns/demo/sa/b', 'unknown']);
});

test('istio_build{component="proxy"} carries the version: nodemesh\'s package version by default', async () => {
  const own = await scrape((() => { const r = new Registry(); new IstioMetrics(r); return r; })());
  const build = one(own.samples, 'istio_build');
  assert.deepEqual(build.labels, { component: 'proxy', tag: (JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as { version: string }).version });
  assert.equal(build.value, 1);
  const given = await scrape((() => { const r = new Registry(); new IstioMetrics(r, { version: '1.2.3' }); return r; })());
  assert.equal(one(given.samples, 'istio_build').labels['tag'], '1.2.3');
});
