/**
 * Istio's Grafana dashboards (deploy/helm/nodemesh/dashboards: mesh, service, workload),
 * evaluated with Prometheus's own PromQL engine (test/tools/promql-eval, built by
 * scripts/install-promql-eval.sh) against nodemesh's metrics, as Grafana would send the
 * queries: template variables resolved from their own queries, $__rate_interval and
 * $__interval substituted, graph panels as range queries over the dashboard's time range,
 * tables as instant queries.
 *
 * Traffic (test/fixtures/dashboards/topology.yaml): HTTP, gRPC and TCP from c1 to the
 * frontend on the same node (the in-process hand-over) and to the backend across nodes
 * (the mTLS tunnel), from the frontend f1 to the backend across nodes, and plaintext from
 * c3 (outside the mesh) to both. Both agents' /metrics are scraped after a first round of
 * traffic and again after a second one, some seconds apart, so that rate() and irate() have
 * two samples in their window. Every panel must return data with $qrep set to
 * "destination" (the dashboards' default) and to "source"; a panel that returns nothing is
 * printed with its queries as they were sent.
 */
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, SimFixture, uniqueSimName, waitFor, type AgentHandle } from '../src/sim/harness';
import { CHART } from './helpers/helm';
import { requireRoot } from './helpers/privileges';
import { metricSum } from './helpers/telemetry';
import { ensurePromqlEval, evaluatePromql, needPromqlEval, type PromAnswer, type PromQuery, type Scrape } from './helpers/promql';
import {
  interpolate, loadDashboard, panelIntervals, queryResultExpr, variableOptions,
  type GrafanaDashboard, type GrafanaPanel, type VariableValue,
} from './helpers/grafana';

const TOPOLOGY = join(ROOT, 'test', 'fixtures', 'dashboards', 'topology.yaml');
const DASHBOARD_DIR = join(CHART, 'dashboards');
const MESH = 'istio-mesh-dashboard.json';
const SERVICE = 'istio-service-dashboard.json';
const WORKLOAD = 'istio-workload-dashboard.json';
const FRONTEND = 'frontend.shop.svc.cluster.local';
const BACKEND = 'backend.shop.svc.cluster.local';
/** The scrape interval Grafana's Prometheus data source assumes by default: it sizes $__rate_interval (60s). */
const GRAFANA_SCRAPE_INTERVAL_MS = 15_000;
/** The least time between the suite's two scrapes, as between two scrapes of a Prometheus. */
const SCRAPE_GAP_MS = 5_000;
/** Requests of each protocol per caller and round. */
const PER_ROUND = 4;
const TEST_TIMEOUT = 240_000;

type Reporter = 'destination' | 'source';

/** Who calls whom in each round. The callers in the mesh are c1 and f1 (node1). */
const CALLS = [
  { from: 'shop/c1', to: FRONTEND, what: 'same node' },
  { from: 'shop/c1', to: BACKEND, what: 'across nodes' },
  { from: 'shop/f1', to: BACKEND, what: 'across nodes' },
  { from: 'shop/c3', to: FRONTEND, what: 'plaintext from outside the mesh, same node' },
  { from: 'shop/c3', to: BACKEND, what: 'plaintext from outside the mesh, across nodes' },
] as const;
const MESH_CALLERS = new Set(['shop/c1', 'shop/f1']);

/** The dashboard views the suite opens: which selection of each dashboard's dropdowns. */
const VIEWS: Array<{ file: string; what: string; chosen: Record<string, string> }> = [
  { file: SERVICE, what: `the frontend (called on its node)`, chosen: { service: FRONTEND } },
  { file: SERVICE, what: `the backend (called across nodes)`, chosen: { service: BACKEND } },
  { file: WORKLOAD, what: 'workload f1 (called on its node, calling across nodes)', chosen: { namespace: 'shop', workload: 'f1' } },
];

interface TargetOutcome { refId: string; expr: string; answer: PromAnswer }
interface PanelOutcome { panel: GrafanaPanel; targets: TargetOutcome[]; hasData: boolean }
interface ViewOutcome { label: string; panels: PanelOutcome[]; notes: string[] }

function dashboard(file: string): GrafanaDashboard {
  return loadDashboard(join(DASHBOARD_DIR, file));
}

/**
 * Opens a dashboard as Grafana would at `nowMs`: resolves its variables in order (query
 * variables from their query_result() queries; `chosen` picks a dropdown's value, which
 * must be among its options; $qrep is the reporter), then evaluates every target.
 */
function openDashboard(d: GrafanaDashboard, chosen: Record<string, string>, reporter: Reporter | undefined, scrapes: Scrape[], nowMs: number): ViewOutcome {
  const values = new Map<string, VariableValue>();
  const notes: string[] = [];
  for (const v of d.variables) {
    if (v.type === 'datasource') continue;
    const flags = { multi: v.multi, includeAll: v.includeAll };
    if (v.name === 'qrep') {
      assert.ok(reporter, `${d.file} has $qrep`);
      values.set(v.name, { value: reporter, ...flags });
      continue;
    }
    if (v.type === 'custom') {
      values.set(v.name, { value: chosen[v.name] ?? (v.current as string), ...flags });
      continue;
    }
    const expr = queryResultExpr(v.query);
    assert.ok(v.type === 'query' && expr, `${d.file}: variable ${v.name} is a query_result() query (${v.type}: ${v.query})`);
    const sent = interpolate(expr, values);
    const [answer] = evaluatePromql(scrapes, [{ id: v.name, expr: sent, timeMs: nowMs, labels: true }]);
    assert.equal(answer!.error, undefined, `${d.file}: variable ${v.name}'s query ${sent} failed: ${answer!.error}`);
    const options = variableOptions(answer!.labels ?? [], v.regex);
    const pick = chosen[v.name];
    if (pick !== undefined) {
      if (!options.includes(pick)) notes.push(`$${v.name}'s dropdown lacks ${pick}; it offers ${JSON.stringify(options)}`);
      values.set(v.name, { value: pick, ...flags });
    } else if (v.current === '$__all' || (Array.isArray(v.current) && v.current.includes('$__all'))) {
      if (options.length === 0) notes.push(`$${v.name}'s dropdown is empty (${sent})`);
      values.set(v.name, { value: v.allValue ?? options, ...flags });
    } else {
      values.set(v.name, { value: (v.current as string | undefined) ?? options[0] ?? '', ...flags });
    }
  }

  const queries: PromQuery[] = [];
  const sent: Array<{ panel: GrafanaPanel; refId: string; expr: string }> = [];
  for (const panel of d.panels) {
    const intervals = panelIntervals(panel, d.rangeMs, GRAFANA_SCRAPE_INTERVAL_MS);
    for (const t of panel.targets) {
      const expr = interpolate(t.expr, values, intervals);
      const id = `${panel.id}/${t.refId}`;
      queries.push(t.instant ? { id, expr, timeMs: nowMs } : { id, expr, timeMs: nowMs, startMs: nowMs - d.rangeMs, stepMs: intervals.intervalMs });
      sent.push({ panel, refId: t.refId, expr });
    }
  }
  const answers = evaluatePromql(scrapes, queries);
  const panels: PanelOutcome[] = d.panels.map((panel) => {
    const targets = sent.flatMap((s, i) => (s.panel === panel ? [{ refId: s.refId, expr: s.expr, answer: answers[i]! }] : []));
    return { panel, targets, hasData: targets.some((t) => t.answer.series > 0) };
  });
  const label = `${d.title}${Object.keys(chosen).length ? ` (${Object.entries(chosen).map(([k, v]) => `$${k}=${v}`).join(', ')})` : ''}${reporter ? ` reporter=${reporter}` : ''}`;
  return { label, panels, notes };
}

/** The targets that returned nothing in panels that did show data (one line each, for the log). */
function emptyTargets(o: ViewOutcome): string {
  return o.panels.filter((p) => p.hasData).flatMap((p) => p.targets.filter((t) => t.answer.series === 0)
    .map((t) => `${p.panel.id}/${t.refId} "${p.panel.title}": ${t.expr.slice(0, 160)}`)).join('\n');
}

function summary(o: ViewOutcome): string {
  const targets = o.panels.flatMap((p) => p.targets);
  return `${o.label}: ${o.panels.filter((p) => p.hasData).length}/${o.panels.length} panels, ` +
    `${targets.filter((t) => t.answer.series > 0).length}/${targets.length} targets with data`;
}

/** What a view lacks, panel by panel, with the queries as sent. */
function emptyPanels(o: ViewOutcome): string {
  const lines: string[] = [];
  for (const p of o.panels.filter((x) => !x.hasData)) {
    lines.push(`  panel ${p.panel.id} "${p.panel.title}" (${p.panel.type}) returned nothing:`);
    for (const t of p.targets) lines.push(`    ${t.refId}: ${t.expr}${t.answer.error ? `\n       error: ${t.answer.error}` : ''}`);
  }
  return [...o.notes.map((n) => `  note: ${n}`), ...lines].join('\n');
}

describe('Istio\'s Grafana dashboards on nodemesh\'s metrics', { concurrency: false, timeout: 1_200_000 }, () => {
  let sim: SimFixture | undefined;
  let dir = '';
  let node1: AgentHandle;
  let node2: AgentHandle;
  const scrapes: Scrape[] = [];
  let nowMs = 0;
  const results: string[] = [];

  /** Each caller's HTTP, gRPC and TCP to its Service; every one must succeed. */
  async function trafficRound(n: number): Promise<void> {
    await Promise.all(CALLS.map(async (c) => {
      const http = await sim!.l7Client(c.from, ['http', `http://${c.to}/hello/${n}`, '--count', String(PER_ROUND), '--concurrency', '1']);
      assert.equal(http.statuses?.['200'], PER_ROUND, `HTTP ${c.from} -> ${c.to} (${c.what}): ${JSON.stringify(http)}`);
      const grpc = await sim!.l7Client(c.from, ['grpc', `${c.to}:9090`, 'unary', '--calls', String(PER_ROUND)]);
      assert.equal(grpc.codes?.['0'], PER_ROUND, `gRPC ${c.from} -> ${c.to} (${c.what}): ${JSON.stringify(grpc)}`);
      const tcp = await sim!.client(c.from, c.to, 9000, `round ${n}`);
      assert.match(tcp.reply ?? '', new RegExp(`round ${n}`), `TCP ${c.from} -> ${c.to} (${c.what}): ${JSON.stringify(tcp)}`);
    }));
  }

  /**
   * Scrapes both agents once the round is in their metrics: the callers' own (source)
   * counters show every request and connection of `rounds` rounds, and the istio_ series of
   * both agents read the same twice in a row (nothing of the round still being recorded).
   */
  async function scrapeAfter(rounds: number): Promise<void> {
    await waitFor(`node1's source-reporter metrics for ${rounds} rounds`, async () => {
      const m = await node1.metrics();
      return CALLS.filter((c) => MESH_CALLERS.has(c.from)).every((c) => {
        const base = { reporter: 'source', source_workload: c.from.split('/')[1]!, destination_service: c.to };
        return metricSum(m, 'istio_requests_total', { ...base, request_protocol: 'http' }) >= PER_ROUND * rounds &&
          metricSum(m, 'istio_requests_total', { ...base, request_protocol: 'grpc' }) >= PER_ROUND * rounds &&
          metricSum(m, 'istio_tcp_connections_closed_total', base) >= rounds;
      });
    }, 30_000);
    const istio = (text: string) => text.split('\n').filter((l) => l.startsWith('istio_')).join('\n');
    let previous = '';
    const texts = await waitFor('both agents\' istio_ metrics to settle', async () => {
      const got = await Promise.all([node1.metrics(), node2.metrics()]);
      const key = got.map(istio).join('\n--\n');
      const same = key === previous;
      previous = key;
      return same ? got : undefined;
    }, 30_000);
    const timeMs = Date.now();
    scrapes.push(
      { timeMs, labels: { job: 'nodemesh-agent', instance: 'node1', node: 'node1' }, text: texts[0] },
      { timeMs, labels: { job: 'nodemesh-agent', instance: 'node2', node: 'node2' }, text: texts[1] },
    );
    nowMs = timeMs;
  }

  before(async () => {
    ensurePromqlEval();
    if (process.getuid?.() !== 0) return;
    dir = mkdtempSync(join(tmpdir(), 'nm-dash-src-'));
    copyFileSync(TOPOLOGY, join(dir, 'topology.yaml'));
    sim = await new SimFixture(uniqueSimName('dash'), dir).up();
    await Promise.all(['f1', 'b1'].map((p) => sim!.startL7App(`shop/${p}`, ['--name', p])));
    [node1, node2] = await Promise.all([
      sim.startAgent('node1', ['--capture', 'ebpf']),
      sim.startAgent('node2', ['--capture', 'ebpf']),
    ]);
    for (const p of ['c1', 'f1']) await node1.waitPod(`shop/${p}`, 'enrolled', 20_000);
    await node2.waitPod('shop/b1', 'enrolled', 20_000);

    // Two rounds, a scrape after each: the series exist at the first scrape and have grown
    // at the second, some seconds later.
    await trafficRound(1);
    await scrapeAfter(1);
    const first = nowMs;
    await trafficRound(2);
    await waitFor(`${SCRAPE_GAP_MS / 1000} s since the first scrape`, () => Date.now() >= first + SCRAPE_GAP_MS, SCRAPE_GAP_MS + 1000);
    await scrapeAfter(2);
  }, { timeout: 900_000 });

  after(async () => {
    if (results.length) process.stderr.write(`# dashboards:\n${results.map((r) => `#   ${r}`).join('\n')}\n`);
    await sim?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the shipped dashboards are Istio\'s files as its release ships them (their hashes in dashboards/README.md)', () => {
    const readme = readFileSync(join(DASHBOARD_DIR, 'README.md'), 'utf8');
    for (const file of [MESH, SERVICE, WORKLOAD]) {
      const sha = createHash('sha256').update(readFileSync(join(DASHBOARD_DIR, file))).digest('hex');
      assert.ok(readme.includes(`\`${sha}\``) && readme.includes(file), `dashboards/README.md gives ${file}'s sha256 ${sha}`);
    }
  });

  test('Grafana\'s substitution as its Prometheus data source does it: escaping, All, intervals, query_result options', () => {
    const values = new Map<string, VariableValue>([
      ['service', { value: 'b.shop.svc', multi: false, includeAll: false }],
      ['qrep', { value: 'destination', multi: true, includeAll: false }],
      ['srcwl', { value: ['c1', 'f.1'], multi: true, includeAll: true }],
      ['one', { value: ['x.y'], multi: true, includeAll: true }],
    ]);
    // A single-valued variable goes in as it is; multi-value ones as escaped regexes.
    assert.equal(interpolate('m{s="$service",r=~"${qrep}",w=~"[[srcwl]]",o=~"$one"}', values), 'm{s="b.shop.svc",r=~"destination",w=~"(c1|f\\\\.1)",o=~"x\\\\.y"}');
    assert.throws(() => interpolate('m{a="$nope"}', values), /\$nope, which has no value/);
    // 15 minutes over 1000 points, with the data source's 15 s scrape interval: $__interval
    // 15s, $__rate_interval 1m (4 scrape intervals); 30 minutes over 100 points: 20s and 1m.
    const panel = { id: 1, title: '', type: 'timeseries', targets: [] };
    const i15 = panelIntervals(panel, 15 * 60_000, GRAFANA_SCRAPE_INTERVAL_MS);
    assert.equal(interpolate('rate(x[$__rate_interval]) $__interval $__range', values, i15), 'rate(x[1m]) 15s 900s');
    assert.deepEqual(panelIntervals({ ...panel, maxDataPoints: 100 }, 30 * 60_000, GRAFANA_SCRAPE_INTERVAL_MS), { intervalMs: 20_000, rateIntervalMs: 60_000, rangeMs: 1_800_000 });
    assert.equal(queryResultExpr('query_result(sum(x) by (a))'), 'sum(x) by (a)');
    assert.deepEqual(variableOptions([{ destination_service: 'a.b' }, { destination_service: 'c' }, { destination_service: 'a.b' }], '/.*destination_service="([^"]*).*/'), ['a.b', 'c']);
    assert.deepEqual(variableOptions([{ source_workload_namespace: 'shop' }], '/.*namespace="([^"]*).*/'), ['shop']);
  });

  test('every target of the three dashboards is valid PromQL once Grafana has substituted its variables', (t: TestContext) => {
    if (!needPromqlEval(t)) return;
    const counts: string[] = [];
    for (const file of [MESH, SERVICE, WORKLOAD]) {
      const d = dashboard(file);
      const values = new Map<string, VariableValue>(d.variables.map((v) => [v.name, { value: v.includeAll ? ['a', 'b.c'] : 'x.y', multi: v.multi, includeAll: v.includeAll }]));
      const queries = d.panels.flatMap((p) => p.targets.map((tg) => ({ id: `${p.id}/${tg.refId}`, expr: interpolate(tg.expr, values, panelIntervals(p, d.rangeMs, GRAFANA_SCRAPE_INTERVAL_MS)), timeMs: Date.now() })));
      const answers = evaluatePromql([], queries);
      const failed = answers.filter((a) => a.error).map((a) => `${a.id}: ${a.error} in ${queries.find((q) => q.id === a.id)!.expr}`);
      assert.deepEqual(failed, [], `${file}: queries PromQL rejects`);
      assert.ok(d.panels.length > 5, `${file} has query panels`);
      counts.push(`${d.title}: ${d.panels.length} panels, ${queries.length} targets`);
    }
    t.diagnostic(counts.join('; '));
  });

  test('the Istio Mesh Dashboard shows data in every panel', { timeout: TEST_TIMEOUT }, (t: TestContext) => {
    if (!requireRoot(t) || !needPromqlEval(t)) return;
    const o = openDashboard(dashboard(MESH), {}, undefined, scrapes, nowMs);
    results.push(summary(o));
    t.diagnostic(summary(o));
    assert.ok(o.panels.every((p) => p.hasData) && o.notes.length === 0, `${summary(o)}\n${emptyPanels(o)}`);
  });

  for (const view of VIEWS) {
    for (const reporter of ['destination', 'source'] as const) {
      test(`the ${dashboard(view.file).title} of ${view.what} shows data in every panel with reporter="${reporter}"`, { timeout: TEST_TIMEOUT }, (t: TestContext) => {
        if (!requireRoot(t) || !needPromqlEval(t)) return;
        const o = openDashboard(dashboard(view.file), view.chosen, reporter, scrapes, nowMs);
        results.push(summary(o));
        t.diagnostic(summary(o));
        t.diagnostic(`targets without data in panels with data:\n${emptyTargets(o)}`);
        assert.ok(o.panels.every((p) => p.hasData) && o.notes.length === 0, `${summary(o)}\n${emptyPanels(o)}`);
      });
    }
  }
});
