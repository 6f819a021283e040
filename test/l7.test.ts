/**
 * The node proxy at L7, end to end on the simulator, with real servers in pods
 * (src/sim/apps/l7-app.ts) and real clients (l7-client.ts).
 *
 * Topology (deploy/examples/sim/l7): node1 runs the clients c1, c2 (ambient), c3 (not
 * enrolled) and the server s1 (ambient); node2 runs b1 (v1), b2 (v2) (ambient) and
 * b-shadow (not enrolled). One agent per node, both with eBPF capture and an access log.
 * Routes (routes.yaml) and TrafficPolicies (policies.yaml) are copied into a watched
 * directory; tests that reconfigure write files there.
 *
 * The tests share one simulation and run in order; each one leaves the configuration as
 * it found it. The drain test stops node1's agent, so it runs last.
 */
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminGet } from '../src/admin/admin-client';
import { ROOT, SimFixture, uniqueSimName, waitFor, type AgentHandle } from '../src/sim/harness';
import { requireRoot } from './helpers/privileges';
import { debugConfig, writeSourceFile } from './helpers/source-dir';
import { accessLines, metricSum, type AccessLine, type Labels } from './helpers/telemetry';

const EXAMPLE_DIR = join(ROOT, 'deploy', 'examples', 'sim', 'l7');

const C1 = '10.244.1.21';
const C2 = '10.244.1.22';

const S1 = '10.244.1.31';
const B1 = '10.244.2.11';
const B2 = '10.244.2.12';
const SHADOW = '10.244.2.13';
const IP_OF: Record<string, string> = { b1: B1, b2: B2, 'b-shadow': SHADOW, s1: S1 };

const B = 'b.demo.svc.cluster.local';
const TEST_TIMEOUT = 120_000;
/** node1's grace on SIGTERM: long, so that the drain test decides when its request ends. */
const NODE1_DRAIN_MS = 30_000;

// ------------------------------------------------------------------------------ helpers

interface HttpOne { status: number; headers: Record<string, string | string[] | undefined>; body: string; servedBy?: string; ms: number; json?: any; error?: string }
interface HttpMany { count: number; statuses: Record<string, number>; servedBy: Record<string, number>; errors: Record<string, number>; p50Ms: number | null; p99Ms: number | null; ms: number; error?: string }
describe('L7 on the simulator', { concurrency: false, timeout: 600_000 }, () => {
  let sim: SimFixture | undefined;
  let dir = '';
  let logDir = '';
  let node1: AgentHandle;
  let node2: AgentHandle;
  let log1 = '';
  let log2 = '';

  const http1 = (pod: string, url: string, ...args: string[]): Promise<HttpOne> => sim!.l7Client(pod, ['http', url, ...args]);
  const httpMany = (pod: string, url: string, count: number, concurrency: number, ...args: string[]): Promise<HttpMany> =>
    sim!.l7Client(pod, ['http', url, '--count', String(count), '--concurrency', String(concurrency), ...args]);
  const config = debugConfig;
  const rss = (agent: AgentHandle): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${agent.child.pid}/status`, 'utf8'))?.[1] ?? NaN) * 1024;

  /** What an app has served (asked from c3, which is not enrolled: no proxy on its side). */
  async function served(pod: string): Promise<{ total: number; paths: Record<string, number> }> {
    const r = await http1('demo/c3', `http://${IP_OF[pod]}:8080/count`);
    assert.equal(r.status, 200, `count of ${pod}: ${JSON.stringify(r)}`);
    return r.json;
  }
  /** Which of b's pods holds the response `hold` (its first chunk sent), asked from c3. */
  async function heldBy(hold: string): Promise<string | undefined> {
    for (const p of ['b1', 'b2']) if ((await http1('demo/c3', `http://${IP_OF[p]}:8080/holds`)).json?.held?.includes(hold)) return p;
    return undefined;
  }
  const servedPath = async (pods: string[], path: string) => (await Promise.all(pods.map((p) => served(p)))).reduce((n, c) => n + (c.paths[path] ?? 0), 0);

  /** Writes a file into the watched source directory atomically; waits for both agents to load it. */
  const writeSource = (name: string, text: string | undefined): Promise<void> => writeSourceFile(dir, logDir, name, text, [node1, node2]);

  /** Waits until at least `n` access-log lines match, then checks that no more come. */
  async function waitAccess(file: string, match: (l: AccessLine) => boolean, n: number): Promise<AccessLine[]> {
    const lines = await waitFor(`${n} access-log lines in ${file}`, () => {
      const got = accessLines(file).filter(match);
      return got.length >= n ? got : undefined;
    }, 10_000);
    // An absence check: a line logged twice would come right after the first; 300 ms
    // more cannot make a correct proxy fail, only give a wrong one time to show itself.
    await new Promise((r) => setTimeout(r, 300));
    const settled = accessLines(file).filter(match);
    assert.equal(settled.length, lines.length, 'more access-log lines than requests');
    return settled;
  }

  before(async () => {
    if (process.getuid?.() !== 0) return;
    dir = mkdtempSync(join(tmpdir(), 'nm-l7-src-'));
    logDir = mkdtempSync(join(tmpdir(), 'nm-l7-log-'));
    cpSync(EXAMPLE_DIR, dir, { recursive: true });
    log1 = join(logDir, 'node1-access.log');
    log2 = join(logDir, 'node2-access.log');
    sim = await new SimFixture(uniqueSimName('l7'), dir).up();
    await Promise.all(['b1', 'b2', 'b-shadow', 's1'].map((p) => sim!.startL7App(`demo/${p}`, ['--name', p])));
    [node1, node2] = await Promise.all([
      sim.startAgent('node1', ['--capture', 'ebpf', '--access-log', log1, '--drain-ms', String(NODE1_DRAIN_MS)]),
      sim.startAgent('node2', ['--capture', 'ebpf', '--access-log', log2]),
    ]);
    for (const p of ['c1', 'c2', 's1']) await node1.waitPod(`demo/${p}`, 'enrolled');
    for (const p of ['b1', 'b2']) await node2.waitPod(`demo/${p}`, 'enrolled');
  });

  after(async () => {
    await sim?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (logDir) rmSync(logDir, { recursive: true, force: true });
  });

  test('enrolment: ambient pods are captured on both nodes, the others are not', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    const pods1 = await node1.pods();
    const pods2 = await node2.pods();
    assert.deepEqual(pods1.filter((p) => p.status === 'enrolled').map((p) => p.key).sort(), ['demo/c1', 'demo/c2', 'demo/s1']);
    assert.deepEqual(pods2.filter((p) => p.status === 'enrolled').map((p) => p.key).sort(), ['demo/b1', 'demo/b2']);
    assert.equal((await node1.capture()).backend, 'ebpf');
    assert.equal((await node2.capture()).backend, 'ebpf');
    // Nothing rejected in the example configuration.
    assert.deepEqual((await config(node1)).rejected, []);
  });

  test('protocols through the proxy and the cross-node tunnel: HTTP/1.1, h2c, gRPC, WebSocket, TLS, TCP', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    const inboundBefore = (await node2.connections()).filter((r) => r.direction === 'inbound').length;
    const metricsBefore = await node1.metrics();
    const metrics2Before = await node2.metrics();

    // HTTP/1.1: b's route sends most to b-v1; the app sees the request from 127.0.0.6, i.e.
    // delivered by node2's proxy from inside b1's namespace (it came through the tunnel).
    const get = await http1('demo/c1', `http://${B}/hello`, '--header', 'x-canary: always');
    assert.equal(get.status, 200, JSON.stringify(get));
    assert.equal(get.servedBy, 'b2');
    assert.equal(get.json.protocol, 'HTTP/1.1');
    assert.match(get.json.remoteAddress, /^(::ffff:)?127\.0\.0\.6$/);
    assert.match(String(get.json.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    assert.match(String(get.json.headers.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
    // A request body arrives whole, on a fresh upstream connection too.
    const body = 'the body of a POST '.repeat(200);
    const post = await http1('demo/c1', `http://${B}/echo`, '--method', 'POST', '--body', body, '--header', 'content-type: text/plain');
    assert.equal(post.status, 200, JSON.stringify(post).slice(0, 500));
    assert.equal(post.body, body);
    // The destination node parses the HTTP inside the tunnel streams it delivered and
    // reports the requests (reporter="destination"), naming the source pod, the pod it
    // delivered to and the Service the source addressed.
    const delivered = metricSum(await node2.metrics(), 'istio_requests_total', { reporter: 'destination', source_workload: 'c1', destination_workload: 'b2', destination_service_name: 'b', response_code: '200', connection_security_policy: 'mutual_tls' });
    assert.ok(delivered >= 1, `node2 counted the requests to b2: ${delivered}`);

    // h2c (Service port with appProtocol kubernetes.io/h2c): HTTP/2 on both legs.
    const h2 = await http1('demo/c1', `http://${B}:8081/`, '--h2c');
    assert.equal(h2.status, 200, JSON.stringify(h2));
    assert.ok(h2.servedBy === 'b1' || h2.servedBy === 'b2');
    assert.equal(h2.json.protocol, 'HTTP/2');
    const h2many = await httpMany('demo/c1', `http://${B}:8081/`, 40, 8, '--h2c');
    assert.deepEqual(h2many.statuses, { 200: 40 }, JSON.stringify(h2many));
    assert.equal((h2many.servedBy.b1 ?? 0) + (h2many.servedBy.b2 ?? 0), 40);
    assert.ok((h2many.servedBy.b1 ?? 0) > 0 && (h2many.servedBy.b2 ?? 0) > 0, `both endpoints serve h2c: ${JSON.stringify(h2many.servedBy)}`);
    const h2post = await http1('demo/c1', `http://${B}:8081/echo`, '--h2c', '--method', 'POST', '--body', 'h2 body');
    assert.equal(h2post.status, 200);
    assert.equal(h2post.body, 'h2 body');

    // gRPC: unary, the three streaming kinds, and a status from the server.
    const grpc = (...args: string[]) => sim!.l7Client('demo/c1', ['grpc', `${B}:9090`, ...args]);
    const unary = await grpc('unary', '--message', 'u', '--calls', '6');
    assert.equal(unary.ok, true, JSON.stringify(unary));
    assert.deepEqual(unary.codes, { 0: 6 });
    assert.ok(unary.servedBy.b1 > 0 && unary.servedBy.b2 > 0, `calls are balanced per request: ${JSON.stringify(unary.servedBy)}`);
    const serverStream = await grpc('server-stream', '--message', 's', '--count', '5');
    assert.equal(serverStream.ok, true, JSON.stringify(serverStream));
    assert.deepEqual(serverStream.replies.map((r: { index: number }) => r.index), [0, 1, 2, 3, 4]);
    const clientStream = await grpc('client-stream', '--message', 'c', '--count', '4');
    assert.equal(clientStream.ok, true, JSON.stringify(clientStream));
    assert.equal(clientStream.replies[0].message, 'cccc');
    assert.equal(clientStream.replies[0].index, 4);
    const bidi = await grpc('bidi', '--message', 'b', '--count', '3');
    assert.equal(bidi.ok, true, JSON.stringify(bidi));
    assert.equal(bidi.replies.length, 3);
    // A trailers-only error response keeps its code and message.
    const failed = await grpc('unary', '--fail-code', '7');
    assert.equal(failed.ok, false);
    assert.equal(failed.code, 7, JSON.stringify(failed));
    assert.match(failed.details, /fail_code 7 requested/);
    const failedStream = await grpc('server-stream', '--count', '2', '--fail-code', '9');
    assert.equal(failedStream.code, 9, JSON.stringify(failedStream));
    assert.equal(failedStream.replies.length, 2);

    // WebSocket (an Upgrade, passed through).
    const ws = await sim!.l7Client('demo/c1', ['ws', `ws://${B}:8082/`, 'hi there']);
    assert.match(ws.reply ?? '', /^b[12]: hi there$/, JSON.stringify(ws));

    // TLS pass-through: the app's own certificate and the client's SNI arrive untouched.
    const tls = await sim!.l7Client('demo/c1', ['tls', B, '8443', 'b.example.test', 'over tls']);
    assert.equal(tls.echo, 'over tls', JSON.stringify(tls));
    assert.equal(tls.sni, 'b.example.test');
    assert.ok(tls.servedBy === 'b1' || tls.servedBy === 'b2');
    assert.equal(tls.peerCN, tls.servedBy, 'the certificate is the app\'s: the proxy does not terminate TLS');

    // Raw TCP.
    const tcp = await sim!.client('demo/c1', B, 9000, 'raw bytes');
    assert.match(tcp.reply ?? '', /^peer (::ffff:)?127\.0\.0\.6 \d+ local (::ffff:)?10\.244\.2\.1[12] 9000 name b[12]\nraw bytes$/, JSON.stringify(tcp));

    // All of it crossed nodes through the tunnel, not as plaintext inbound: node2 saw no
    // plaintext inbound connection, and the tunnel session from c1's namespace is open
    // on node2's 15008 (the proxy tunnels to the first enrolled pod address of a node).
    const inbound = (await node2.connections()).filter((r) => r.direction === 'inbound');
    assert.equal(inbound.length, inboundBefore, `plaintext inbound on node2: ${JSON.stringify(inbound.slice(inboundBefore))}`);
    const ss = await sim!.runInPod('demo/b1', ['ss', '-Htn', 'state', 'established', '( sport = :15008 )']);
    assert.match(ss, new RegExp(`${B1.replace(/\./g, '\\.')}:15008\\s+(\\[::ffff:)?${C1.replace(/\./g, '\\.')}\\]?:\\d+`), `tunnel sessions on b1: ${ss}`);

    // TCP and TLS connections were counted at the source (Istio TCP metrics), and by the
    // destination with the Service the source addressed; gRPC by both reporters.
    const metrics = await node1.metrics();
    const metrics2 = await node2.metrics();
    const delta = (name: string, labels: Labels) => metricSum(metrics, name, labels) - metricSum(metricsBefore, name, labels);
    const delta2 = (name: string, labels: Labels) => metricSum(metrics2, name, labels) - metricSum(metrics2Before, name, labels);
    assert.equal(delta('istio_tcp_connections_opened_total', { reporter: 'source', source_workload: 'c1', destination_service_name: 'b' }), 2, 'TLS and TCP');
    assert.equal(delta2('istio_tcp_connections_opened_total', { reporter: 'destination', source_workload: 'c1', destination_service_name: 'b', connection_security_policy: 'mutual_tls' }), 2, 'TLS and TCP, at the destination');
    assert.equal(delta('istio_requests_total', { reporter: 'source', source_workload: 'c1', destination_service_name: 'b', request_protocol: 'grpc' }), 11);
    assert.equal(delta('istio_requests_total', { reporter: 'source', source_workload: 'c1', destination_service_name: 'b', request_protocol: 'grpc', grpc_response_status: '7' }), 1);
    assert.equal(delta2('istio_requests_total', { reporter: 'destination', source_workload: 'c1', destination_service_name: 'b', request_protocol: 'grpc' }), 11);
    assert.equal(delta2('istio_requests_total', { reporter: 'destination', source_workload: 'c1', destination_service_name: 'b', request_protocol: 'grpc', grpc_response_status: '7' }), 1);
  });

  test('same-node destination: handed over in-process, recorded once per reporter', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    const want = { destination_service_name: 's' };
    const before = await node1.metrics();
    const s1InBefore = (await node1.connections('demo/s1')).filter((r) => r.direction === 'inbound').length;
    const r = await http1('demo/c1', 'http://s.demo.svc.cluster.local/same-node');
    assert.equal(r.status, 200, JSON.stringify(r));
    assert.equal(r.servedBy, 's1');
    assert.match(r.json.remoteAddress, /^(::ffff:)?127\.0\.0\.6$/);
    assert.ok(r.json.headers['x-request-id'], 'went through the proxy');
    const after = await node1.metrics();
    const delta = (labels: Labels) => metricSum(after, 'istio_requests_total', { ...want, ...labels }) - metricSum(before, 'istio_requests_total', { ...want, ...labels });
    assert.equal(delta({}), 2, 'one request recorded for s by each reporter, nothing more');
    assert.equal(delta({ reporter: 'source', source_workload: 'c1', destination_workload: 's1', response_code: '200' }), 1);
    assert.equal(delta({ reporter: 'destination', source_workload: 'c1', destination_workload: 's1', response_code: '200' }), 1);
    // No second pass: s1's inbound listener saw nothing.
    assert.equal((await node1.connections('demo/s1')).filter((x) => x.direction === 'inbound').length, s1InBefore);
    const lines = await waitAccess(log1, (l) => l.path === '/same-node', 2);
    assert.deepEqual(lines.map((l) => l.reporter).sort(), ['destination', 'source']);
    for (const l of lines) assert.equal(l.upstream_host, `${S1}:8080`);
  });

  test('streamed responses are relayed chunk by chunk, without Nagle delays', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    // Two chunks 5 ms apart: ~11 ms end to end. A proxy socket without TCP_NODELAY holds
    // the second chunk until the client's delayed ACK (~40 ms).
    const p50 = async (pod: string, url: string) => {
      const r = await httpMany(pod, `${url}/slow-body/5?chunks=2`, 30, 1);
      assert.deepEqual(r.statuses, { 200: 30 }, JSON.stringify(r));
      return r.p50Ms!;
    };
    const baseline = await p50('demo/c3', `http://${SHADOW}:8080`); // no proxy on either side
    const limit = Math.max(30, baseline + 25);
    for (const [pod, url, what] of [
      ['demo/c1', `http://${B}`, 'outbound, through the tunnel'],
      ['demo/c1', 'http://s.demo.svc.cluster.local', 'outbound, same-node hand-over'],
      ['demo/c3', `http://${B1}:8080`, 'plaintext inbound'],
    ] as const) {
      const ms = await p50(pod, url);
      assert.ok(ms < limit, `${what}: p50 ${ms} ms (without the mesh: ${baseline} ms)`);
    }
  });

  test('canary: a 90/10 split within ±5% over 2000 requests', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    const before = await node1.metrics();
    const r = await httpMany('demo/c1', `http://${B}/canary`, 2000, 16);
    assert.deepEqual(r.statuses, { 200: 2000 }, JSON.stringify(r));
    assert.deepEqual(r.errors, {});
    const v1 = r.servedBy.b1 ?? 0;
    const v2 = r.servedBy.b2 ?? 0;
    assert.equal(v1 + v2, 2000, JSON.stringify(r.servedBy));
    assert.ok(Math.abs(v2 / 2000 - 0.1) <= 0.05, `b-v2 got ${v2} of 2000 (${((100 * v2) / 2000).toFixed(1)}%)`);
    // The metrics say the same, per backend Service.
    const after = await node1.metrics();
    const delta = (svc: string) => metricSum(after, 'istio_requests_total', { reporter: 'source', source_workload: 'c1', destination_service_name: svc, response_code: '200' })
      - metricSum(before, 'istio_requests_total', { reporter: 'source', source_workload: 'c1', destination_service_name: svc, response_code: '200' });
    assert.equal(delta('b-v1'), v1);
    assert.equal(delta('b-v2'), v2);
  });

  test('header-match routing: x-canary: always goes to b-v2 only', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    const r = await httpMany('demo/c1', `http://${B}/match`, 40, 4, '--header', 'x-canary: always');
    assert.deepEqual(r.statuses, { 200: 40 });
    assert.deepEqual(r.servedBy, { b2: 40 });
    const other = await httpMany('demo/c1', `http://${B}/match`, 40, 4, '--header', 'x-canary: never');
    assert.ok((other.servedBy.b1 ?? 0) >= 25, `without the header the split applies: ${JSON.stringify(other.servedBy)}`);
  });

  test('retries recover from a flaky backend, and give up after their attempts', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    const key = `k${Date.now().toString(36)}`;
    // The first 2 requests for the key get 503; the route retries 503 up to 3 times.
    const ok = await http1('demo/c1', `http://${B}/flaky/${key}/2`);
    assert.equal(ok.status, 200, JSON.stringify(ok));
    assert.equal(ok.servedBy, 'b1');
    assert.equal(ok.json.attempt, 3, 'the third attempt succeeded');
    assert.equal((await served('b1')).paths[`/flaky/${key}/2`], 3);
    const [line] = await waitAccess(log1, (l) => l.path === `/flaky/${key}/2`, 1);
    assert.equal(line!.attempts, 3);
    assert.equal(line!.response_code, 200);
    // 5 failures outlast 1 try + 3 retries: the client gets the last 503.
    const bad = await http1('demo/c1', `http://${B}/flaky/${key}x/5`);
    assert.equal(bad.status, 503);
    assert.equal(bad.servedBy, 'b1');
    assert.equal((await served('b1')).paths[`/flaky/${key}x/5`], 4);
    const [badLine] = await waitAccess(log1, (l) => l.path === `/flaky/${key}x/5`, 1);
    assert.equal(badLine!.attempts, 4);
  });

  test('retry budget: a backend that always fails does not get a retry storm', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    // b-storm retries 503 up to 5 times: unbounded, 200 requests would make 1200 attempts.
    // The budget allows 20% of the requests plus 10 a second over its 10 s window.
    const path = `/status/503?storm=${Date.now()}`;
    const requests = 200;
    const r = await httpMany('demo/c1', `http://b-storm.demo.svc.cluster.local${path}`, requests, 8);
    assert.deepEqual(r.statuses, { 503: requests }, JSON.stringify(r));
    const attempts = await servedPath(['b1', 'b2'], '/status/503');
    const retries = attempts - requests;
    assert.ok(retries > 0, 'some retries happened');
    // 10/s over the 10 s window (more if the run outlasts the window), plus 20%.
    const allowed = 10 * (10 + Math.floor(r.ms / 1000)) + 0.2 * requests + 2;
    assert.ok(retries <= allowed, `the budget capped the retries: ${retries} retries for ${requests} requests in ${r.ms} ms`);
    const lines = await waitAccess(log1, (l) => l.path === path, requests);
    assert.equal(lines.reduce((n, l) => n + l.attempts, 0), attempts, 'attempts in the access log match what the backends saw');
    assert.ok(lines.some((l) => l.response_flags.split(',').includes('URX')), 'requests refused a retry are flagged URX');
  });

  test('timeouts: the route\'s request timeout answers 504 (UT) on time', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    const slow = await http1('demo/c1', `http://${B}/delay/3000`);
    assert.equal(slow.status, 504, JSON.stringify(slow));
    assert.equal(slow.headers['x-nodemesh-flags'], 'UT');
    assert.ok(slow.ms >= 450 && slow.ms < 2000, `answered after ${slow.ms} ms for a 500 ms timeout`);
    const fast = await http1('demo/c1', `http://${B}/delay/50`);
    assert.equal(fast.status, 200);
    const [line] = await waitAccess(log1, (l) => l.path === '/delay/3000', 1);
    assert.equal(line!.response_code, 504);
    assert.equal(line!.response_flags, 'UT');
  });

  test('outlier detection: a failing endpoint is ejected, then restored', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    const key = `od${Date.now().toString(36)}`;
    const path = `/flaky/${key}/3`;
    // Spend b1's three failures for the key directly (from c3, outside the mesh): from now
    // on only b2 fails, three times, which is b-outlier's consecutive5xxErrors.
    for (let i = 0; i < 3; i++) assert.equal((await http1('demo/c3', `http://${B1}:8080${path}`)).status, 503);
    const url = `http://b-outlier.demo.svc.cluster.local${path}`;
    const ejections = async () => (await config(node1)).policies.find((p) => p.service === 'demo/b-outlier')?.ejections ?? [];
    let failures = 0;
    for (let i = 0; i < 12 && (await ejections()).length === 0; i++) {
      const r = await http1('demo/c1', url);
      if (r.status === 503) {
        assert.equal(r.servedBy, 'b2');
        failures += 1;
      } else assert.equal(r.servedBy, 'b1');
    }
    assert.equal(failures, 3);
    const ejected = await ejections();
    assert.deepEqual(ejected.map((e) => e.key), [`${B2}:8080`]);
    // While ejected, b1 serves everything.
    const during = await httpMany('demo/c1', url, 20, 2);
    assert.deepEqual(during.servedBy, { b1: 20 }, JSON.stringify(during));
    // After baseEjectionTime (3 s) b2 is back, and healthy now.
    await waitFor('b2 to be restored', async () => (await ejections()).length === 0, 10_000);
    const restored = await httpMany('demo/c1', url, 20, 2);
    assert.deepEqual(restored.statuses, { 200: 20 });
    assert.ok((restored.servedBy.b2 ?? 0) >= 5, `b2 serves again: ${JSON.stringify(restored.servedBy)}`);
  });

  test('fault injection: aborts and delays at their configured rates', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    // b-fault: abort 25% with 503, delay 50% by 20 ms.
    const path = `/fault-${Date.now().toString(36)}`;
    const n = 400;
    const r = await httpMany('demo/c1', `http://b-fault.demo.svc.cluster.local${path}`, n, 8);
    const aborted = r.statuses['503'] ?? 0;
    const ok = r.statuses['200'] ?? 0;
    assert.equal(aborted + ok, n, JSON.stringify(r));
    // ±5 standard deviations of a binomial(400, 0.25) (sd 8.7).
    assert.ok(aborted >= 57 && aborted <= 143, `aborted ${aborted} of ${n} for 25%`);
    assert.equal(r.servedBy['(none)'], aborted, 'aborts are answered by the proxy');
    // Aborted requests never reach the backends.
    assert.equal(await servedPath(['b1', 'b2'], path), ok);
    const lines = await waitAccess(log1, (l) => l.path === path, n);
    const flags = (l: AccessLine) => l.response_flags.split(',');
    assert.equal(lines.filter((l) => flags(l).includes('FI')).length, aborted);
    assert.ok(lines.filter((l) => flags(l).includes('FI')).every((l) => l.response_code === 503));
    const delayed = lines.filter((l) => flags(l).includes('DI'));
    // binomial(400, 0.5): sd 10.
    assert.ok(delayed.length >= 150 && delayed.length <= 250, `delayed ${delayed.length} of ${n} for 50%`);
    assert.ok(delayed.every((l) => l.duration_ms >= 19), 'delayed requests took the fixed delay');
    // gRPC calls get the abort as a gRPC status (UNAVAILABLE for a 503), not a broken call.
    const calls = 80;
    const grpc = await sim!.l7Client('demo/c1', ['grpc', 'b-fault.demo.svc.cluster.local:9090', 'unary', '--calls', String(calls)]);
    const unavailable = grpc.codes?.['14'] ?? 0;
    assert.equal((grpc.codes?.['0'] ?? 0) + unavailable, calls, JSON.stringify(grpc.codes));
    // binomial(80, 0.25): sd 3.9.
    assert.ok(unavailable >= 4 && unavailable <= 36, `aborted ${unavailable} of ${calls} calls`);
    if (grpc.code === 14) assert.equal(grpc.details, 'fault injected');
  });

  test('mirroring: the shadow gets a copy, the primary response is unchanged', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    const path = `/mirror/${Date.now().toString(36)}`;
    const r = await httpMany('demo/c1', `http://${B}${path}`, 20, 4);
    assert.deepEqual(r.statuses, { 200: 20 });
    assert.deepEqual(r.servedBy, { b1: 20 }, 'only the primary answers');
    const one = await http1('demo/c1', `http://${B}${path}`);
    assert.equal(one.servedBy, 'b1');
    assert.equal(one.json.name, 'b1');
    assert.equal(one.json.path, path);
    await waitFor('the shadow to receive every copy', async () => ((await served('b-shadow')).paths[path] ?? 0) >= 21, 10_000);
    // An absence check (no copy sent twice): waiting longer cannot fail a correct proxy.
    await new Promise((res) => setTimeout(res, 300));
    assert.equal((await served('b-shadow')).paths[path], 21);
    assert.equal((await served('b1')).paths[path], 21);
    // Copies are not requests of their own in the telemetry.
    assert.equal((await waitAccess(log1, (l) => l.path === path, 21)).every((l) => l.destination_service === 'b-v1.demo.svc.cluster.local'), true);
  });

  test('rate limit: 429 past the bucket, per source workload', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    // b-ratelimit: 10 tokens per source workload, refilled once a minute.
    const url = 'http://b-ratelimit.demo.svc.cluster.local/limited';
    const before = await node1.metrics();
    const noisy = await httpMany('demo/c1', url, 30, 1);
    assert.deepEqual(noisy.statuses, { 200: 10, 429: 20 }, JSON.stringify(noisy));
    // c2 has a bucket of its own: c1's burst does not starve it.
    const fair = await httpMany('demo/c2', url, 10, 1);
    assert.deepEqual(fair.statuses, { 200: 10 }, JSON.stringify(fair));
    assert.equal((await http1('demo/c2', url)).status, 429);
    const limited = await http1('demo/c1', url);
    assert.equal(limited.status, 429);
    assert.equal(limited.headers['x-nodemesh-flags'], 'RL');
    const after = await node1.metrics();
    const delta = (labels: Labels) => metricSum(after, 'istio_requests_total', { destination_service_name: 'b-ratelimit', ...labels }) - metricSum(before, 'istio_requests_total', { destination_service_name: 'b-ratelimit', ...labels });
    assert.equal(delta({ source_workload: 'c1', response_code: '429', response_flags: 'RL' }), 21);
    assert.equal(delta({ source_workload: 'c1', response_code: '200' }), 10);
    assert.equal(delta({ source_workload: 'c2', response_code: '200' }), 10);
  });

  test('telemetry: metrics and access-log lines match the requests made', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    const path = `/telemetry-${Date.now().toString(36)}`;
    const before = await node1.metrics();
    const n = 25;
    const many = await httpMany('demo/c1', `http://${B}${path}`, n, 5);
    assert.deepEqual(many.statuses, { 200: n });
    const one = await http1('demo/c2', `http://${B}${path}?one`, '--method', 'POST', '--body', '12345');
    assert.equal(one.status, 200);
    const h2 = await httpMany('demo/c1', `http://${B}:8081${path}`, 10, 2, '--h2c');
    assert.deepEqual(h2.statuses, { 200: 10 });
    const after = await node1.metrics();

    const base = { reporter: 'source', source_workload_namespace: 'demo', destination_service_namespace: 'demo', request_protocol: 'http', response_code: '200', response_flags: '-' };
    const delta = (name: string, labels: Labels) => metricSum(after, name, { ...base, ...labels }) - metricSum(before, name, { ...base, ...labels });
    const c1b = delta('istio_requests_total', { source_workload: 'c1', destination_service_name: 'b-v1' }) + delta('istio_requests_total', { source_workload: 'c1', destination_service_name: 'b-v2' });
    assert.equal(c1b, n, 'c1 -> b (canary backends) counted once per request');
    assert.equal(delta('istio_requests_total', { source_workload: 'c2', destination_service_name: 'b-v1' }) + delta('istio_requests_total', { source_workload: 'c2', destination_service_name: 'b-v2' }), 1);
    assert.equal(delta('istio_requests_total', { source_workload: 'c1', destination_service_name: 'b' }), 10, 'h2c requests, no route on 8081');
    assert.equal(delta('istio_request_duration_milliseconds_count', { source_workload: 'c1', destination_service_name: 'b-v1' }) + delta('istio_request_duration_milliseconds_count', { source_workload: 'c1', destination_service_name: 'b-v2' }), n);
    assert.equal(delta('istio_request_bytes_sum', { source_workload: 'c2', destination_service_name: one.servedBy === 'b1' ? 'b-v1' : 'b-v2' }), 5);

    const lines = await waitAccess(log1, (l) => l.path === path && l.protocol === 'HTTP/1.1', n);
    assert.equal(new Set(lines.map((l) => l.request_id)).size, n, 'one request id per request');
    const servedBy: Record<string, number> = {};
    for (const l of lines) {
      assert.equal(l.kind, 'http');
      assert.equal(l.reporter, 'source');
      assert.equal(l.source_workload, 'c1');
      assert.equal(l.source_namespace, 'demo');
      assert.equal(l.method, 'GET');
      assert.equal(l.protocol, 'HTTP/1.1');
      assert.equal(l.response_code, 200);
      assert.equal(l.response_flags, '-');
      assert.equal(l.route, 'HTTPRoute demo/b-main#4');
      assert.equal(l.attempts, 1);
      assert.ok(l.bytes_sent > 0);
      assert.match(l.traceparent ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
      assert.ok(l.destination_workload === 'b1' || l.destination_workload === 'b2', JSON.stringify(l));
      assert.equal(l.upstream_host, `${IP_OF[l.destination_workload!]}:8080`);
      assert.equal(l.destination_service, `b-v${l.destination_workload === 'b1' ? 1 : 2}.demo.svc.cluster.local`);
      servedBy[l.destination_workload!] = (servedBy[l.destination_workload!] ?? 0) + 1;
    }
    assert.deepEqual(servedBy, many.servedBy, 'the log names the backends that answered');
    // The single request: its line carries the request id the app received, and its body size.
    const [oneLine] = await waitAccess(log1, (l) => l.path === `${path}?one`, 1);
    assert.equal(oneLine!.request_id, one.json.headers['x-request-id']);
    // The destination's proxy is in the trace too: the app sees its span, in the same trace
    // (node2 logs the traceparent it sent the app).
    assert.equal(oneLine!.traceparent!.slice(0, 35), String(one.json.headers.traceparent).slice(0, 35), 'one trace');
    const [oneAtDestination] = await waitAccess(log2, (l) => l.path === `${path}?one` && l.reporter === 'destination', 1);
    assert.equal(oneAtDestination!.traceparent, one.json.headers.traceparent);
    assert.equal(oneAtDestination!.request_id, one.json.headers['x-request-id']);
    assert.equal(oneLine!.source_workload, 'c2');
    // The downstream peer is the pod itself, not the loopback address eBPF capture connects from.
    assert.match(oneLine!.source_address ?? '', new RegExp(`^${C2.replace(/\./g, '\\.')}:\\d+$`));
    assert.equal(oneLine!.method, 'POST');
    assert.equal(oneLine!.bytes_received, 5);
    assert.equal(oneLine!.bytes_sent, Buffer.byteLength(one.body));
    const h2lines = await waitAccess(log1, (l) => l.path === path && l.protocol === 'HTTP/2', 10);
    assert.ok(h2lines.every((l) => l.destination_service === `${B}` && l.route === null));
  });

  test('a configuration change applies without dropping requests in flight', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    const original = readFileSync(join(dir, 'routes.yaml'), 'utf8');
    const allV2 = original.replace(/- \{ name: b-v1, port: 80, weight: 90 \}\n\s+- \{ name: b-v2, port: 80, weight: 10 \}/, '- { name: b-v2, port: 80, weight: 1 }');
    assert.notEqual(allV2, original);
    // A long request, held by the app after its first chunk until the routes have changed
    // twice (so it is in flight across both changes on any machine), and steady load: 600
    // requests of at least 20 ms each, 4 at a time, so at least 3 s of it.
    const hold = `reconfig-${Date.now().toString(36)}`;
    const slow = http1('demo/c2', `http://${B}/slow-body/20?chunks=10&hold=${hold}`, '--timeout', '60000');
    const load = httpMany('demo/c1', `http://${B}/slow-body/10?chunks=2`, 600, 4);
    const holder = await waitFor('the long request to be in flight (its first chunk sent)', () => heldBy(hold), 20_000);
    await writeSource('routes.yaml', allV2);
    const switched = await httpMany('demo/c2', `http://${B}/after-change`, 20, 2);
    assert.deepEqual(switched.servedBy, { b2: 20 }, 'the new routes apply to new requests');
    await writeSource('routes.yaml', original);
    assert.equal((await http1('demo/c3', `http://${IP_OF[holder]}:8080/release/${hold}`)).status, 200);
    const [slowDone, loadDone] = await Promise.all([slow, load]);
    assert.equal(slowDone.status, 200, JSON.stringify(slowDone));
    assert.equal(slowDone.body.split('\n').filter(Boolean).length, 10, 'the in-flight streamed body completed');
    assert.deepEqual(loadDone.errors, {}, JSON.stringify(loadDone));
    assert.deepEqual(loadDone.statuses, { 200: 600 });
    assert.ok(loadDone.ms > 1500, `the load lasted through the changes (${loadDone.ms} ms)`);
    const back = await httpMany('demo/c2', `http://${B}/after-restore`, 40, 4);
    assert.ok((back.servedBy.b1 ?? 0) >= 25, `the original split is back: ${JSON.stringify(back.servedBy)}`);
  });

  test('a bad object is rejected with its reason, and the rest still applies', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    const bad = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: bad-route, namespace: demo }
spec:
  parentRefs: [{ group: "", kind: Service, name: b-v2, port: 80 }]
  rules:
    - retry: { attempts: 2, codes: [200] }
      backendRefs: [{ name: b-v1, port: 80 }]
---
apiVersion: nodemesh.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: bad-policy, namespace: demo }
spec:
  targetRef: { group: "", kind: Service, name: b-v2 }
  rateLimit:
    tokenBucket: { maxTokenz: 1, tokensPerFill: 1, fillInterval: 1s }
`;
    try {
      await writeSource('bad.yaml', bad);
      const rejected = (await config(node1)).rejected;
      const route = rejected.find((r) => r.object.includes('bad-route'));
      assert.ok(route, JSON.stringify(rejected));
      assert.match(route.reason, /spec\.rules\[0\]\.retry\.codes\[0\]/);
      assert.match(route.reason, /bad\.yaml/);
      const policy = rejected.find((r) => r.object.includes('bad-policy'));
      assert.ok(policy, JSON.stringify(rejected));
      assert.match(policy.reason, /maxTokenz/);
      assert.match(policy.reason, /unknown field/);
      // Neither applies: b-v2 has no route and no rate limit; everything else works.
      const direct = await httpMany('demo/c1', 'http://b-v2.demo.svc.cluster.local/after-bad', 15, 3);
      assert.deepEqual(direct.statuses, { 200: 15 });
      assert.deepEqual(direct.servedBy, { b2: 15 });
      const viaB = await httpMany('demo/c1', `http://${B}/after-bad`, 10, 2, '--header', 'x-canary: always');
      assert.deepEqual(viaB.servedBy, { b2: 10 });
    } finally {
      await writeSource('bad.yaml', undefined);
    }
    assert.deepEqual((await config(node1)).rejected, []);
  });

  test('abuse: oversized headers, request smuggling, slowloris, a client that never reads', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    const rssBefore = rss(node1);
    // Slowloris and a client that never reads run in the background while the rest goes on.
    const started = Date.now();
    const background = (args: string[]) => sim!.l7Client('demo/c1', args).catch((err: unknown) => ({ error: String(err) }));
    const slowloris = background(['slowloris', B, '80', '25', '--timeout', '30000']);
    // 200 MB that the client does not read for 8 s.
    const noread = background(['noread', `http://${B}/bytes/200000000`, '8']);

    // Oversized head: 431 from the proxy, the app never sees it; a large but legal one passes.
    const big = await sim!.l7Client('demo/c1', ['bigheader', `http://${B}/`, String(64 * 1024)]);
    assert.equal(big.status, 431, JSON.stringify(big));
    assert.equal(big.servedBy, undefined);
    const fine = await sim!.l7Client('demo/c1', ['bigheader', `http://${B}/`, String(8 * 1024)]);
    assert.equal(fine.status, 200, JSON.stringify(fine));

    // Smuggling: refused with 400 and closed; the smuggled request never reaches a backend.
    for (const kind of ['cl-te', 'cl-cl']) {
      const s = await sim!.l7Client('demo/c1', ['smuggle', B, '80', kind]);
      assert.equal(s.statusLine, 'HTTP/1.1 400 Bad Request', `${kind}: ${JSON.stringify(s)}`);
      assert.deepEqual(s.statusLines, ['HTTP/1.1 400 Bad Request'], kind);
      assert.equal(s.closed, true, kind);
    }
    assert.equal(await servedPath(['b1', 'b2'], '/smuggle-probe'), 0);

    // Meanwhile other pods are served as usual.
    const others = await httpMany('demo/c2', `http://${B}/during-abuse`, 200, 8);
    assert.deepEqual(others.statuses, { 200: 200 }, JSON.stringify(others));
    assert.ok(others.p99Ms! < 2000, `p99 ${others.p99Ms} ms while under abuse`);

    // The reader that never reads: the proxy applies back-pressure instead of buffering
    // the 200 MB response, so its memory stays well below that while the client stalls.
    // Give a proxy that buffered instead of applying back-pressure 6 s to show it in its RSS
    // (an absence check: a slower machine only makes a buffering proxy grow less, never a
    // correct one grow more).
    while (Date.now() - started < 6000) await new Promise((r) => setTimeout(r, 100));
    const grown = rss(node1) - rssBefore;
    assert.ok(grown < 100 * 1024 * 1024, `agent RSS grew by ${(grown / 1048576).toFixed(1)} MB while a client did not read`);
    const stalled = await noread;
    assert.equal(stalled.error, undefined, JSON.stringify(stalled));

    // Slowloris: the proxy gives up on the unfinished head after its headers timeout (10 s).
    const loris = await slowloris;
    assert.ok(loris.closedByPeerAfterMs !== undefined, `the proxy closed the slowloris connection: ${JSON.stringify(loris)}`);
    assert.ok(loris.closedByPeerAfterMs >= 9_000 && loris.closedByPeerAfterMs <= 13_000, `closed after ${loris.closedByPeerAfterMs} ms`);
    assert.match(loris.received, /^HTTP\/1\.1 408 /);
    assert.ok(Date.now() - started < 30_000);

    // Still alive and serving.
    assert.equal(node1.child.exitCode, null);
    assert.equal(node2.child.exitCode, null);
    const afterAll = await httpMany('demo/c2', `http://${B}/after-abuse`, 20, 4);
    assert.deepEqual(afterAll.statuses, { 200: 20 });
  });

  test('graceful drain on SIGTERM: the request in flight completes, new connections bypass the old agent', { timeout: TEST_TIMEOUT }, async (t: TestContext) => {
    if (!requireRoot(t)) return;
    // The app holds the response after its first chunk until the test releases it, so
    // "in flight" and "still draining" are states the test sees, not a race with a timer.
    // Every connection of the earlier tests has closed: the drain waits only for this test's.
    await waitFor('node1 to have no connection open', async () => {
      const open = await adminGet<unknown[]>(node1.socket, '/debug/open');
      if (open.length > 0) throw new Error(`still open: ${JSON.stringify(open)}`);
      return true;
    }, 20_000);
    const hold = `drain-${Date.now().toString(36)}`;
    // Its client waits up to 60 s (the app's own hold limit) rather than the default 10 s.
    const inFlight = http1('demo/c1', `http://${B}/slow-body/20?chunks=10&hold=${hold}`, '--timeout', '60000');
    const holder = await waitFor('the slow response to be in flight (its first chunk sent)', () => heldBy(hold), 20_000);
    const stopAt = Date.now();
    const stopped = node1.stop();
    // While the old agent drains, a new connection from c1 is not captured (its listener
    // is gone, so eBPF capture fails open): it reaches b directly, without the proxy's
    // request id or trace context.
    await waitFor('node1 to close its listeners and drain', () => node1.log.includes('listeners closed: draining'), 20_000);
    const fresh = await http1('demo/c1', `http://${B}/during-drain`);
    assert.equal(fresh.status, 200, JSON.stringify(fresh));
    // It arrived at node2 as plaintext from c1's own address (captured inbound there, where
    // the request gets its id), not through the old agent (which logs nothing of it: below).
    const direct = await waitFor('node2 to log the direct request', () => accessLines(log2).find((l) => l.kind === 'http' && l.reporter === 'destination' && l.path === '/during-drain'
      && (l.source_address ?? '').startsWith(`${C1}:`) && l.source_workload === 'c1' && l.connection_security_policy === 'none'), 5000);
    assert.equal(fresh.json.headers['x-request-id'], direct.request_id, 'the id is the one node2 gave it');
    assert.equal(node1.child.exitCode, null, 'still draining');
    const released = await http1('demo/c3', `http://${IP_OF[holder]}:8080/release/${hold}`);
    assert.equal(released.status, 200, JSON.stringify(released));
    const done = await inFlight;
    assert.equal(done.status, 200, JSON.stringify(done));
    assert.equal(done.body.split('\n').filter(Boolean).length, 10, 'the in-flight body completed');
    assert.equal(await stopped, 0);
    // It exits once nothing is in flight, not at the end of its grace (NODE1_DRAIN_MS): no
    // connection from the earlier tests (gRPC clients that left without a GOAWAY included)
    // lingers, and the grace never ran out.
    const drainOver = node1.log.split('\n').find((l) => l.includes('drain over: closing the connections still open'));
    assert.equal(drainOver, undefined, `the agent waited for its whole ${NODE1_DRAIN_MS} ms grace (${Date.now() - stopAt} ms after SIGTERM): ${drainOver}`);
    const lines = accessLines(log1);
    assert.equal(lines.filter((l) => l.path === '/during-drain').length, 0);
    assert.equal(lines.filter((l) => l.path === `/slow-body/20?chunks=10&hold=${hold}` && l.response_code === 200 && l.response_flags === '-').length, 1, 'the drained request was logged');
  });
});
