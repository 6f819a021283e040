/**
 * `nodemesh bench` (issue 5): the report builder on synthetic runs (no root), then the
 * quick bench itself, run once as CI runs it (`nodemesh bench --quick --out DIR`), and
 * the consistency of the three reports it writes:
 *   report.json  valid against deploy/bench/report.schema.json; every mode present, with
 *                numbers for every placement and connection count or a skip reason;
 *                percentiles ordered; fixed-rate runs within ±10% of the target rate;
 *   report.svg   parses as XML (Python's ElementTree, an independent parser) with one
 *                series per mode;
 *   report.md    a row per mode in each headline table.
 */
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { requireRoot } from './helpers/privileges';
import { validateJson } from '../src/bench/json-schema';
import { buildReport, histogramOfMs, headlineTable, logTicks, renderMarkdown, renderSvg, MODE_DESCRIPTIONS, type RawBench, type RunSample } from '../src/bench/report';
import { BENCH_MODES, PLACEMENTS, type BenchMode, type BenchReport, type Placement } from '../src/bench/report-schema';
import { envoyBootstrap, envoyCounter } from '../src/bench/envoy';
import { fortioHistogram, fromFortio, percentileMs, type FortioResult } from '../src/bench/load';
import { benchTopology, layout } from '../src/bench/topology';
import { scaleTable } from '../src/bench/scale-report';
import type { ScaleFigures, ScaleRow } from '../src/bench/report-schema';
import { sumMetric } from '../src/bench/runner';

const ROOT = resolve(__dirname, '..', '..');
const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const SCHEMA = JSON.parse(readFileSync(join(ROOT, 'deploy', 'bench', 'report.schema.json'), 'utf8')) as Record<string, unknown>;

// --- synthetic data -----------------------------------------------------------------------

/** n latencies spread evenly around `base` ms (deterministic). */
function latencies(base: number, n = 2000, spread = 0.5): number[] {
  return Array.from({ length: n }, (_, i) => base * (1 + spread * ((i % 100) / 100)) + (i % 997 === 0 ? base * 5 : 0));
}

const ADDED: Record<BenchMode, number> = { direct: 0, sidecar: 1.0, 'ambient-iptables': 0.6, 'ambient-ebpf': 0.4, 'ambient-ebpf-sockmap': 0.35, 'envoy-sidecar': 0.8 };

function sample(mode: BenchMode, placement: Placement, connections: number, round: number, load: 'fixed-rate' | 'max-throughput' = 'fixed-rate'): RunSample {
  const base = 0.2 + ADDED[mode] * (placement === 'cross-node' ? 1.5 : 1);
  const proxies: RunSample['proxies'] =
    mode === 'direct' ? []
      : mode === 'sidecar' || mode === 'envoy-sidecar'
        ? [{ name: `${mode} c`, kind: mode === 'sidecar' ? 'nodemesh-sidecar' : 'envoy-sidecar', node: 'node1', cpuS: 0.5, peakMemoryKiB: mode === 'sidecar' ? 90 * 1024 : 40 * 1024 },
          { name: `${mode} s`, kind: mode === 'sidecar' ? 'nodemesh-sidecar' : 'envoy-sidecar', node: placement === 'same-node' ? 'node1' : 'node2', cpuS: 0.5, peakMemoryKiB: mode === 'sidecar' ? 80 * 1024 : 38 * 1024 }]
        : [{ name: 'agent node1', kind: 'node-agent', node: 'node1', cpuS: 0.4, peakMemoryKiB: 100 * 1024 }, ...(placement === 'cross-node' ? [{ name: 'agent node2', kind: 'node-agent' as const, node: 'node2', cpuS: 0.3, peakMemoryKiB: 95 * 1024 }] : [])];
  return {
    mode, placement, load, connections, targetRate: load === 'fixed-rate' ? 1000 : null, round,
    requests: 10_000, failures: 0, windowS: 10,
    histogram: histogramOfMs(latencies(base)),
    proxies,
    machineCpuS: 12,
    tlsSessions: mode === 'envoy-sidecar' ? 16 : mode.startsWith('ambient') && placement === 'cross-node' ? 1 : null,
  };
}

function synthetic(skipped: Partial<Record<BenchMode, string>> = {}): RawBench {
  const samples: RunSample[] = [];
  for (const round of [1, 2]) {
    for (const mode of BENCH_MODES) {
      if (skipped[mode]) continue;
      for (const placement of PLACEMENTS) {
        for (const c of [2, 16]) samples.push(sample(mode, placement, c, round));
        samples.push(sample(mode, placement, 16, round, 'max-throughput'));
      }
    }
  }
  return {
    generatedAt: '2026-01-01T00:00:00.000Z',
    source: 'test',
    command: 'nodemesh bench (synthetic)',
    machine: { cpus: 2, cpuModel: 'test', memoryGiB: 1, kernel: 'test' },
    topology: 'synthetic',
    settings: { quick: false, rate: 1000, payloadBytes: 1024, connections: [2, 16], headlineConnections: 16, durationS: 10, warmupS: 1, rounds: 2, maxThroughput: { connections: 16, durationS: 5 }, placements: [...PLACEMENTS] },
    load: { tool: 'fortio', version: '1.68.2', reason: 'test', example: 'fortio load ...' },
    modes: BENCH_MODES.map((name) => (skipped[name] ? { name, status: 'skipped' as const, reason: skipped[name]!, description: MODE_DESCRIPTIONS[name] } : { name, status: 'measured' as const, description: MODE_DESCRIPTIONS[name] })),
    samples,
    elapsedS: 100,
  };
}

function scaleRow(series: ScaleRow['series'], enrolledPods: number, services: number, idleRssMiB: number, readyS = 0.5): ScaleRow {
  return {
    series, enrolledPods, services, endpointsPerService: services ? 10 : 0, podObjects: enrolledPods + services * 10,
    readyS, idleRssMiB, peakRssMiB: idleRssMiB + 5, startCpuS: 0.4, idleCpuPercent: 0.2,
    change: series === 'kube' ? null : { changes: 3, medianMs: services ? 30 : 105, maxMs: services ? 45 : 110 },
  };
}

/** Scale figures as the scale phase returns them: pods 1 / 25 / 100, Services 0 / 1000 x 10, a kube row. */
function syntheticScale(): ScaleFigures {
  return {
    settings: { pods: [1, 25, 100], services: [0, 1000], endpointsPerService: 10, changes: 3, idleS: 5, kube: true },
    bareNodeRssMiB: 39.6,
    rows: [scaleRow('pods', 1, 0, 55), scaleRow('pods', 25, 0, 56.2), scaleRow('pods', 100, 0, 60), scaleRow('services', 1, 0, 55.5), scaleRow('services', 1, 1000, 90.5, 1.5), scaleRow('kube', 1, 0, 85)],
    skipped: [],
    elapsedS: 80,
  };
}

/** Parses the SVG's scale panel with Python's ElementTree: one entry per scale-row group. */
function svgScaleRows(svg: string): Array<{ series: string; pods: string; services: string; idle: string }> {
  const py = `
import sys, json, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.buffer.read())
ns = '{http://www.w3.org/2000/svg}'
print(json.dumps([{'series': g.get('data-series'), 'pods': g.get('data-pods'), 'services': g.get('data-services'), 'idle': g.get('data-idle')} for g in root.iter(ns + 'g') if g.get('class') == 'scale-row']))
`;
  const r = spawnSync('python3', ['-c', py], { input: svg, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`the SVG does not parse as XML: ${r.stderr}`);
  return JSON.parse(r.stdout) as Array<{ series: string; pods: string; services: string; idle: string }>;
}

/** What a report with a scale part holds, in all three files. */
function checkScale(report: BenchReport, markdown: string, svg: string): void {
  const scale = report.scale!;
  assert.ok(scale, 'the report has its scale part');
  for (const r of scale.rows) {
    const what = `${r.series} pods=${r.enrolledPods} services=${r.services}`;
    assert.ok(r.readyS !== null && r.readyS > 0, `${what}: time to ready measured`);
    assert.ok(r.idleRssMiB !== null && r.idleRssMiB > (scale.bareNodeRssMiB ?? 0), `${what}: idle RSS above a bare Node.js process's`);
    assert.ok(r.peakRssMiB !== null && r.peakRssMiB >= r.idleRssMiB * 0.95, `${what}: peak at least about idle`);
    if (r.series !== 'kube' && scale.settings.changes > 0) assert.ok(r.change && r.change.changes === scale.settings.changes && r.change.medianMs > 0 && r.change.medianMs <= r.change.maxMs, `${what}: changes timed ${JSON.stringify(r.change)}`);
  }
  for (const n of scale.settings.pods) assert.ok(scale.rows.some((r) => r.series === 'pods' && r.enrolledPods === n), `a row for ${n} pods`);
  for (const n of scale.settings.services) assert.ok(scale.rows.some((r) => r.series === 'services' && r.services === n), `a row for ${n} Services`);
  const ids = report.goals.map((g) => g.id);
  for (const id of ['scale-idle-memory-source', 'scale-memory-per-pod', 'scale-memory-endpoints', 'scale-change-apply', 'scale-ready', 'scale-idle-memory-kube']) assert.ok(ids.includes(id), `goal ${id}`);
  assert.ok(markdown.includes('## Scale') && markdown.includes(scaleTable(scale)), 'the markdown holds the scale table');
  assert.equal(scaleTable(scale).split('\n').length, 2 + scale.rows.length, 'a markdown row per scale row');
  assert.deepEqual(svgScaleRows(svg).map((g) => [g.series, Number(g.pods), Number(g.services), Number(g.idle)]), scale.rows.map((r) => [r.series, r.enrolledPods, r.services, r.idleRssMiB]), 'a chart bar pair per scale row, in order');
}

// --- report checks shared by the synthetic and the real report ---------------------------

/** Parses an SVG with Python's ElementTree; returns the data-mode of each series group, or throws. */
function svgSeries(svg: string): Array<{ mode: string; skipped: string | null; polylines: number }> {
  const py = `
import sys, json, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.buffer.read())
ns = '{http://www.w3.org/2000/svg}'
assert root.tag == ns + 'svg', root.tag
out = []
for g in root.iter(ns + 'g'):
    if g.get('class') == 'series':
        out.append({'mode': g.get('data-mode'), 'skipped': g.get('data-skipped'), 'polylines': len(g.findall(ns + 'polyline'))})
print(json.dumps(out))
`;
  const r = spawnSync('python3', ['-c', py], { input: svg, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`the SVG does not parse as XML: ${r.stderr}`);
  return JSON.parse(r.stdout) as Array<{ mode: string; skipped: string | null; polylines: number }>;
}

function checkReport(report: BenchReport, markdown: string, svg: string, options: { rateTolerance: number }): void {
  assert.deepEqual(validateJson(SCHEMA, report), [], 'the report matches deploy/bench/report.schema.json');
  // Every mode, in order, measured with rows or skipped with a reason.
  assert.deepEqual(report.modes.map((m) => m.name), [...BENCH_MODES]);
  const s = report.settings;
  for (const m of report.modes) {
    const rows = report.results.filter((r) => r.mode === m.name);
    if (m.status === 'skipped') {
      assert.ok(m.reason && m.reason.length > 0, `${m.name} is skipped with a reason`);
      assert.equal(rows.length, 0, `${m.name} is skipped, so it has no numbers`);
      continue;
    }
    for (const placement of s.placements) {
      for (const c of s.connections) assert.ok(rows.some((r) => r.placement === placement && r.load === 'fixed-rate' && r.connections === c), `${m.name} ${placement} c=${c} has a row`);
      if (s.maxThroughput) assert.ok(rows.some((r) => r.placement === placement && r.load === 'max-throughput'), `${m.name} ${placement} has a max-throughput row`);
    }
  }
  for (const r of report.results) {
    const l = r.latencyMs;
    const what = `${r.mode} ${r.placement} ${r.load} c=${r.connections}`;
    assert.ok(l.p50 > 0 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max, `${what}: percentiles ordered ${JSON.stringify(l)}`);
    assert.ok(r.requests > 0 && r.achievedRate > 0);
    if (r.load === 'fixed-rate') {
      assert.ok(Math.abs(r.achievedRate - s.rate) <= options.rateTolerance * s.rate, `${what}: achieved ${r.achievedRate} req/s, target ${s.rate} ±${options.rateTolerance * 100}%`);
      if (r.mode === 'direct') assert.equal(r.addedLatencyMs, null);
      else {
        assert.ok(r.addedLatencyMs, `${what} has added latency`);
        const base = report.results.find((b) => b.mode === 'direct' && b.placement === r.placement && b.load === 'fixed-rate' && b.connections === r.connections)!;
        assert.ok(Math.abs(r.addedLatencyMs!.p50 - (r.latencyMs.p50 - base.latencyMs.p50)) < 0.002, `${what}: added p50 is the difference from direct`);
      }
    }
    if (r.mode === 'direct') {
      assert.equal(r.proxyCpuSPer1000, null);
      assert.deepEqual(r.proxies, []);
    } else {
      assert.ok(r.proxies.length >= 1 && r.proxyCpuSPer1000 !== null && r.proxyCpuSPer1000 > 0, `${what}: proxy CPU counted`);
      const sidecars = r.mode === 'sidecar' || r.mode === 'envoy-sidecar';
      if (sidecars) assert.equal(r.proxies.length, 2, `${what}: both sidecars count`);
      else assert.equal(r.proxies.length, r.placement === 'same-node' ? 1 : 2, `${what}: the node agent of each node on the path`);
      assert.ok(r.proxyPeakMemoryMiB !== null && r.proxyPeakMemoryMiB > 0);
    }
  }
  assert.equal(report.goals.length, 5 + (report.scale ? 6 : 0));

  // SVG: well-formed XML, one series per mode.
  const series = svgSeries(svg);
  assert.deepEqual(series.map((x) => x.mode), [...BENCH_MODES], 'one series group per mode, in order');
  for (const x of series) {
    const m = report.modes.find((mm) => mm.name === x.mode)!;
    if (m.status === 'skipped') assert.ok(x.skipped && x.polylines === 0, `${x.mode}: skipped series says why and draws nothing`);
    else assert.equal(x.polylines, 4 * s.placements.length, `${x.mode}: a line per percentile and placement`);
  }

  // Markdown: each headline table has a row per mode.
  for (const placement of s.placements) {
    const table = headlineTable(report, placement);
    assert.ok(markdown.includes(table), `the markdown holds the ${placement} headline table`);
    const rows = table.split('\n').slice(2);
    assert.deepEqual(rows.map((line) => line.split('|')[1]!.trim()), [...BENCH_MODES], `${placement}: a row per mode`);
    for (const m of report.modes.filter((mm) => mm.status === 'skipped')) assert.match(rows.find((line) => line.startsWith(`| ${m.name} |`))!, /skipped: /);
  }
}

// --- unit level -----------------------------------------------------------------------------

describe('bench report builder (synthetic runs)', () => {
  test('rounds merge, added latency against direct, proxies and goals', () => {
    const report = buildReport(synthetic());
    checkReport(report, renderMarkdown(report), renderSvg(report), { rateTolerance: 0.1 });
    const ebpf = report.results.find((r) => r.mode === 'ambient-ebpf' && r.placement === 'same-node' && r.connections === 16 && r.load === 'fixed-rate')!;
    assert.equal(ebpf.runs, 2);
    assert.equal(ebpf.requests, 20_000);
    assert.equal(ebpf.achievedRate, 1000);
    assert.ok(Math.abs(ebpf.addedLatencyMs!.p50 - 0.4 * 1.25) < 0.02, JSON.stringify(ebpf.addedLatencyMs)); // median of base*(1..1.5) ≈ 1.25 base
    assert.equal(ebpf.proxyCpuSPer1000, 0.04); // 0.4 s x 2 rounds / 20,000 requests x 1000
    assert.equal(ebpf.proxyPeakMemoryMiB, 100);
    const cross = report.results.find((r) => r.mode === 'ambient-ebpf' && r.placement === 'cross-node' && r.connections === 16 && r.load === 'fixed-rate')!;
    assert.equal(cross.proxyPeakMemoryMiB, 195, 'cross node: both agents');
    const sidecar = report.results.find((r) => r.mode === 'sidecar' && r.placement === 'same-node' && r.connections === 2 && r.load === 'fixed-rate')!;
    assert.equal(sidecar.proxyCpuSPer1000, 0.1, 'both sidecars count');
    assert.equal(sidecar.proxyPeakMemoryMiB, 170);
    const max = report.results.find((r) => r.mode === 'sidecar' && r.load === 'max-throughput')!;
    assert.equal(max.targetRate, null);
    assert.equal(max.addedLatencyMs, null);

    const goal = (id: string) => report.goals.find((g) => g.id === id)!;
    assert.equal(goal('ambient-ebpf-same-node-p50').met, true); // 0.4 / 1.0
    assert.ok(Math.abs(goal('ambient-ebpf-same-node-p50').value! - 0.4) < 0.03);
    assert.equal(goal('ambient-ebpf-cross-node-p50').met, true);
    assert.equal(goal('sidecar-vs-envoy-p99').met, true); // 1.0 / 0.8 = 1.25
    assert.equal(goal('node-proxy-cpu').met, true); // agent node1: 0.4 s x 2 / 20,000 x 1000 = 0.04
    assert.equal(goal('node-proxy-cpu').value, 0.04);
    assert.equal(goal('node-memory').met, false); // 100 MiB agent vs 38 MiB Envoy
    assert.equal(goal('node-memory').value, 100);
    assert.equal(goal('node-memory').target, 38);
  });

  test('without --scale the report has no scale part and no scale goal', () => {
    const report = buildReport(synthetic());
    assert.equal(report.scale, null);
    assert.ok(!report.goals.some((g) => g.id.startsWith('scale-')));
    assert.doesNotMatch(renderMarkdown(report), /## Scale/);
    assert.deepEqual(svgScaleRows(renderSvg(report)), []);
  });

  test('scale figures: one report with the modes, goals judged on them, a table and a chart panel', () => {
    const raw = synthetic();
    raw.scale = syntheticScale();
    const report = buildReport(raw);
    const markdown = renderMarkdown(report);
    const svg = renderSvg(report);
    checkReport(report, markdown, svg, { rateTolerance: 0.1 });
    checkScale(report, markdown, svg);
    const goal = (id: string) => report.goals.find((g) => g.id === id)!;
    assert.deepEqual([goal('scale-idle-memory-source').met, goal('scale-idle-memory-source').value], [true, 55]);
    assert.deepEqual([goal('scale-memory-per-pod').met, goal('scale-memory-per-pod').value], [true, 0.051]); // (60 - 55) / 99
    assert.deepEqual([goal('scale-memory-endpoints').met, goal('scale-memory-endpoints').value], [true, 35]); // 90.5 - 55.5 for 10,000
    assert.deepEqual([goal('scale-change-apply').met, goal('scale-change-apply').value], [false, 45]);
    assert.deepEqual([goal('scale-ready').met, goal('scale-ready').value], [true, 1.5]);
    assert.deepEqual([goal('scale-idle-memory-kube').met, goal('scale-idle-memory-kube').value], [false, 85]);
    assert.match(markdown, /\| 1000 Services x 10 \| 10001 \| 1\.50 \| 90\.5 \| 95\.5 \|/);
  });

  test('scale goals: a smaller run is scaled to 10,000 endpoints; missing rows leave goals undecided', () => {
    const small = syntheticScale();
    small.rows = [scaleRow('pods', 1, 0, 55), scaleRow('services', 1, 0, 55), scaleRow('services', 1, 100, 59)];
    small.skipped = ['kube: no test API server'];
    const raw = synthetic();
    raw.scale = small;
    const report = buildReport(raw);
    const goal = (id: string) => report.goals.find((g) => g.id === id)!;
    assert.equal(goal('scale-memory-endpoints').value, 40); // 4 MiB for 1000 endpoints
    assert.match(goal('scale-memory-endpoints').detail, /scaled to 10000/);
    assert.equal(goal('scale-memory-per-pod').met, null);
    assert.equal(goal('scale-idle-memory-kube').met, null);
    assert.match(goal('scale-idle-memory-kube').detail, /no test API server/);
    assert.deepEqual(validateJson(SCHEMA, report), []);
    assert.match(renderMarkdown(report), /- skipped: kube: no test API server/);
  });

  test('a skipped mode keeps its place with the reason; its goals are undecided, never filled in', () => {
    const report = buildReport(synthetic({ 'envoy-sidecar': 'envoy not installable: pip failed' }));
    checkReport(report, renderMarkdown(report), renderSvg(report), { rateTolerance: 0.1 });
    const envoy = report.modes.find((m) => m.name === 'envoy-sidecar')!;
    assert.deepEqual([envoy.status, envoy.reason], ['skipped', 'envoy not installable: pip failed']);
    assert.equal(report.results.filter((r) => r.mode === 'envoy-sidecar').length, 0);
    assert.equal(report.goals.find((g) => g.id === 'sidecar-vs-envoy-p99')!.met, null);
    assert.equal(report.goals.find((g) => g.id === 'node-memory')!.met, null);
    assert.match(renderMarkdown(report), /\| envoy-sidecar \| skipped: envoy not installable: pip failed \|/);
  });

  test('samples of a skipped mode are not reported', () => {
    const raw = synthetic();
    raw.modes = raw.modes.map((m) => (m.name === 'sidecar' ? { ...m, status: 'skipped', reason: 'failed half-way' } : m));
    const report = buildReport(raw);
    assert.equal(report.results.filter((r) => r.mode === 'sidecar').length, 0);
  });

  test('a goal fails when any connection count fails it, and is undecided when the reference added nothing', () => {
    const raw = synthetic();
    raw.samples = raw.samples.map((s) => (s.mode === 'ambient-ebpf' && s.placement === 'same-node' && s.connections === 2 ? { ...s, histogram: histogramOfMs(latencies(0.2 + 0.9)) } : s));
    const report = buildReport(raw);
    const g = report.goals.find((x) => x.id === 'ambient-ebpf-same-node-p50')!;
    assert.equal(g.met, false);
    assert.ok(g.value! > 0.8, JSON.stringify(g));
    assert.match(g.detail, /c=2: .* = 0\.9/);

    const flat = synthetic();
    flat.samples = flat.samples.map((s) => (s.mode === 'sidecar' ? { ...s, histogram: histogramOfMs(latencies(0.2)) } : s));
    assert.equal(buildReport(flat).goals.find((x) => x.id === 'ambient-ebpf-same-node-p50')!.met, null);
  });

  test('the schema checker rejects what the schema forbids', () => {
    const report = buildReport(synthetic()) as unknown as Record<string, unknown>;
    assert.deepEqual(validateJson(SCHEMA, report), []);
    const broken = JSON.parse(JSON.stringify(report)) as { results: Array<Record<string, unknown>>; modes: Array<Record<string, unknown>>; extra?: number };
    delete broken.results[0]!.latencyMs;
    broken.modes[1]!.name = 'istio';
    broken.extra = 1;
    const problems = validateJson(SCHEMA, broken);
    assert.ok(problems.some((p) => p.includes("/results/0: missing required 'latencyMs'")), problems.join('\n'));
    assert.ok(problems.some((p) => p.startsWith('/modes/1/name')), problems.join('\n'));
    assert.ok(problems.some((p) => p.includes("unexpected property 'extra'")), problems.join('\n'));
  });

  test('report-schema.ts and report.schema.json agree on modes and fields', () => {
    const defs = SCHEMA.$defs as Record<string, { enum?: string[]; required?: string[] }>;
    assert.deepEqual(defs.mode!.enum, [...BENCH_MODES]);
    assert.deepEqual(defs.placement!.enum, [...PLACEMENTS]);
    const row = buildReport(synthetic()).results[0]!;
    assert.deepEqual(Object.keys(row).sort(), [...defs.result!.required!].sort());
  });

  test('SVG and markdown escape what they print', () => {
    const report = buildReport(synthetic({ 'envoy-sidecar': 'a <tag> & "quotes" | pipe' }));
    const series = svgSeries(renderSvg(report));
    assert.equal(series.find((x) => x.mode === 'envoy-sidecar')!.skipped, 'a <tag> & "quotes" | pipe');
    assert.match(renderMarkdown(report), /skipped: a <tag> & "quotes" \\\| pipe/);
    assert.deepEqual(logTicks(0.1, 10), [0.1, 0.2, 0.5, 1, 2, 5, 10]);
  });

  test('fortio results: 2xx counted, errors apart, its histogram carried over', () => {
    const fortio: FortioResult = {
      ActualQPS: 999.5,
      ActualDuration: 10_000_000_000,
      RetCodes: { '200': 9990, '503': 7, '-1': 3 },
      DurationHistogram: {
        Count: 10_000,
        Data: [
          { Start: 0.0002, End: 0.0003, Count: 5000 },
          { Start: 0.0003, End: 0.0004, Count: 4000 },
          { Start: 0.0009, End: 0.001, Count: 900 },
          { Start: 0.004, End: 0.005, Count: 100 },
        ],
      },
    };
    const o = fromFortio(fortio);
    assert.equal(o.requests, 9990);
    assert.equal(o.failures, 10);
    assert.deepEqual(o.failureDetail, { '503': 7, 'socket error': 3 });
    assert.equal(o.windowS, 10);
    assert.ok(Math.abs(percentileMs(fortioHistogram(fortio), 50) - 0.3) < 0.01);
    assert.ok(percentileMs(o.histogram, 99) >= 0.9 && percentileMs(o.histogram, 99) <= 1.0);
    assert.ok(percentileMs(o.histogram, 99.9) >= 4 && percentileMs(o.histogram, 99.9) <= 5.01);
  });

  test('Envoy bootstrap: Istio-shaped listeners, ORIGINAL_DST passthrough, inbound to 127.0.0.1; stats read back', () => {
    const b = envoyBootstrap({ pod: 'bench/s1-envoy', podIP: '10.244.1.31', adminSocket: '/run/x/admin.sock', inboundHttpPorts: [8080], outboundHttpPorts: [80] }) as any;
    const listeners = b.static_resources.listeners as any[];
    const outbound = listeners.find((l) => l.name === 'virtualOutbound');
    assert.equal(outbound.address.socket_address.port_value, 15001);
    assert.equal(outbound.use_original_dst, true);
    assert.equal(outbound.listener_filters[0].name, 'envoy.filters.listener.original_dst');
    const port80 = listeners.find((l) => l.name === '0.0.0.0_80');
    assert.equal(port80.bind_to_port, false);
    const hcm = port80.filter_chains[0].filters[0].typed_config;
    assert.equal(hcm.stat_prefix, 'outbound_0.0.0.0_80');
    assert.equal(hcm.http_filters.at(-1).name, 'envoy.filters.http.router');
    const inbound = listeners.find((l) => l.name === 'virtualInbound');
    assert.equal(inbound.address.socket_address.port_value, 15006);
    assert.equal(inbound.filter_chains[0].filter_chain_match.destination_port, 8080);
    const clusters = b.static_resources.clusters as any[];
    assert.equal(clusters.find((c) => c.name === 'PassthroughCluster').type, 'ORIGINAL_DST');
    assert.equal(clusters.find((c) => c.name === 'inbound|8080||').load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address, '127.0.0.1');
    assert.deepEqual(b.admin.address.pipe.path, '/run/x/admin.sock');
    assert.equal(envoyCounter('http.outbound_0.0.0.0_80.downstream_rq_total: 12\nhttp.admin.downstream_rq_total: 3\n', /^http\.outbound_.*\.downstream_rq_total$/), 12);
    assert.equal(sumMetric('istio_requests_total{reporter="source",a="b"} 5\nistio_requests_total{reporter="destination"} 7\n', 'istio_requests_total', 'reporter="source"'), 5);
  });

  test('topology: a group of pods per mode family, the ambient group annotated only while its modes run', () => {
    const on = benchTopology(['direct', 'ambient'], true);
    const off = benchTopology(['direct', 'ambient'], false);
    assert.match(on, /name: c-ambient\n[^]*?nodemesh\.dev\/mode: ambient/);
    assert.doesNotMatch(off, /mode: ambient/);
    assert.equal(layout('sidecar').servers['cross-node'].url, 'http://10.96.0.21/echo');
    assert.match(benchTopology(['sidecar'], false), /nodemesh\.dev\/mode: sidecar/);
  });
});

// --- the quick bench, as CI runs it ------------------------------------------------------------

describe('nodemesh bench --quick on the simulator', { concurrency: false, timeout: 240_000 }, () => {
  let out: string | undefined;
  let code: number | null = null;
  let log = '';
  let wallS = 0;

  before(async () => {
    if (process.getuid?.() !== 0) return;
    out = mkdtempSync(join(tmpdir(), 'nm-bench-report-'));
    const started = Date.now();
    const child = spawn(process.execPath, [CLI, 'bench', '--quick', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODEMESH_LOG_LEVEL: 'warn' } });
    child.stdout.on('data', (d: Buffer) => { log += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { log += d.toString(); });
    // Bounded: the bench ends by itself well before this; if not, it is killed by its pid
    // (SIGTERM first, so that it removes its simulation).
    const term = setTimeout(() => child.kill('SIGTERM'), 220_000);
    const kill = setTimeout(() => child.kill('SIGKILL'), 235_000);
    code = await new Promise<number | null>((r) => child.once('close', (c) => r(c)));
    clearTimeout(term);
    clearTimeout(kill);
    wallS = (Date.now() - started) / 1000;
  });

  after(() => {
    if (out) rmSync(out, { recursive: true, force: true });
  });

  test('writes report.json, report.md and report.svg, all consistent', (t: TestContext) => {
    if (!requireRoot(t)) return;
    assert.equal(code, 0, `nodemesh bench --quick failed:\n${log.slice(-4000)}`);
    for (const f of ['report.json', 'report.md', 'report.svg']) assert.ok(existsSync(join(out!, f)), `${f} written`);
    const report = JSON.parse(readFileSync(join(out!, 'report.json'), 'utf8')) as BenchReport;
    const markdown = readFileSync(join(out!, 'report.md'), 'utf8');
    const svg = readFileSync(join(out!, 'report.svg'), 'utf8');
    checkReport(report, markdown, svg, { rateTolerance: 0.1 });
    assert.equal(report.settings.quick, true);
    // direct and the nodemesh modes need nothing outside the repository: they are measured.
    for (const m of ['direct', 'sidecar', 'ambient-iptables'] as const) assert.equal(report.modes.find((x) => x.name === m)!.status, 'measured', `${m}: ${log.slice(-2000)}`);
    for (const r of report.results) assert.equal(r.failures, 0, `${r.mode} ${r.placement} c=${r.connections}: ${r.failures} failed requests`);
    assert.ok(report.elapsedS < 120, `--quick took ${report.elapsedS} s (under two minutes wanted; ${wallS.toFixed(0)} s with tool set-up)`);
    t.diagnostic(`quick bench: ${report.elapsedS} s (${wallS.toFixed(0)} s wall), load ${report.load.tool} ${report.load.version}; ${report.modes.map((m) => `${m.name} ${m.status}${m.reason ? ` (${m.reason})` : ''}`).join(', ')}`);
  });
});

// --- the scale phase, as CI runs it ----------------------------------------------------------

describe('nodemesh bench --scale-only --quick on the simulator', { concurrency: false, timeout: 240_000 }, () => {
  let out: string | undefined;
  let code: number | null = null;
  let log = '';

  before(async () => {
    if (process.getuid?.() !== 0) return;
    out = mkdtempSync(join(tmpdir(), 'nm-bench-scale-'));
    const child = spawn(process.execPath, [CLI, 'bench', '--scale-only', '--quick', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODEMESH_LOG_LEVEL: 'warn' } });
    child.stdout.on('data', (d: Buffer) => { log += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { log += d.toString(); });
    // Bounded like the quick bench above: SIGTERM first, so that it removes its simulation.
    const term = setTimeout(() => child.kill('SIGTERM'), 200_000);
    const kill = setTimeout(() => child.kill('SIGKILL'), 230_000);
    code = await new Promise<number | null>((r) => child.once('close', (c) => r(c)));
    clearTimeout(term);
    clearTimeout(kill);
  });

  after(() => {
    if (out) rmSync(out, { recursive: true, force: true });
  });

  test('measures every scale step and reports it in report.json, report.md and report.svg', (t: TestContext) => {
    if (!requireRoot(t)) return;
    assert.equal(code, 0, `nodemesh bench --scale-only --quick failed:\n${log.slice(-4000)}`);
    const report = JSON.parse(readFileSync(join(out!, 'report.json'), 'utf8')) as BenchReport;
    const markdown = readFileSync(join(out!, 'report.md'), 'utf8');
    const svg = readFileSync(join(out!, 'report.svg'), 'utf8');
    checkReport(report, markdown, svg, { rateTolerance: 0.1 });
    assert.ok(report.modes.every((m) => m.status === 'skipped' && m.reason === 'not run (--scale-only)'));
    checkScale(report, markdown, svg);
    const scale = report.scale!;
    const none = scale.rows.find((r) => r.series === 'services' && r.services === 0)!;
    const most = scale.rows.find((r) => r.series === 'services' && r.services === Math.max(...scale.settings.services))!;
    assert.ok(most.idleRssMiB! > none.idleRssMiB!, `the Services cost memory: ${none.idleRssMiB} -> ${most.idleRssMiB} MiB`);
    // The --kube row: an agent with the Kubernetes client, against the test API server, enrolled its pod.
    const kube = scale.rows.find((r) => r.series === 'kube');
    assert.ok(kube && kube.enrolledPods === 1 && (kube.readyS ?? 0) > 0, `a --kube row: ${JSON.stringify(kube)}`);
    assert.equal(scale.settings.kube, true);
    t.diagnostic(scaleTable(scale));
  });
});
