/**
 * From the bench's raw runs to its three reports: report.json (src/bench/report-schema.ts),
 * report.md (tables) and report.svg (latency percentiles by mode and connection count).
 * Pure functions: the runner (./runner.ts) measures, this builds; the unit tests feed it
 * synthetic runs.
 */
import * as hdr from 'hdr-histogram-js';
import {
  BENCH_MODES,
  PLACEMENTS,
  REPORT_SCHEMA_ID,
  REPORT_VERSION,
  type AddedLatencyMs,
  type BenchMode,
  type BenchReport,
  type BenchSettings,
  type Goal,
  type LatencyMs,
  type LoadKind,
  type LoadTool,
  type ModeStatus,
  type Placement,
  type ProxyFigures,
  type ProxyKind,
  type ResultRow,
  type ScaleFigures,
} from './report-schema';
import { scaleGoals, scaleMarkdown, scaleSvg } from './scale-report';

/** One measured run: one round of one (mode, placement, load, connections). */
export interface RunSample {
  mode: BenchMode;
  placement: Placement;
  load: LoadKind;
  connections: number;
  targetRate: number | null;
  round: number;
  requests: number;
  failures: number;
  windowS: number;
  /** The window's latencies as an HDR histogram in microseconds (hdr-histogram-js compressed base64, 32-bit). */
  histogram: string;
  proxies: Array<{ name: string; kind: ProxyKind; node: string; cpuS: number; peakMemoryKiB: number | null }>;
  /** Busy CPU-seconds of the machine in the window. */
  machineCpuS: number;
  /**
   * TLS sessions the client side opened in the run's (mode, placement) block, warm-up
   * included, by the end of the run (tunnel sessions of the node agent, the client Envoy's
   * upstream handshakes); null where nothing speaks TLS.
   */
  tlsSessions: number | null;
}

export interface RawBench {
  generatedAt: string;
  source: string;
  command: string;
  machine: BenchReport['machine'];
  topology: string;
  settings: BenchSettings;
  load: LoadTool;
  modes: ModeStatus[];
  samples: RunSample[];
  /** The scale phase's figures (./scale-runner.ts); absent or null when it did not run. */
  scale?: ScaleFigures | null;
  elapsedS: number;
}

// --- histograms --------------------------------------------------------------------------

export function newHistogram(): hdr.Histogram {
  return hdr.build({ bitBucketSize: 32, numberOfSignificantValueDigits: 3, useWebAssembly: false });
}

export function encodeHistogram(h: hdr.Histogram): string {
  return hdr.encodeIntoCompressedBase64(h);
}

/** Records latencies given in milliseconds (tests, synthetic data). */
export function histogramOfMs(values: readonly number[]): string {
  const h = newHistogram();
  for (const v of values) h.recordValue(Math.max(1, Math.round(v * 1000)));
  return encodeHistogram(h);
}

function latencyOf(encoded: readonly string[]): LatencyMs | undefined {
  const total = newHistogram();
  for (const e of encoded) total.add(hdr.decodeFromCompressedBase64(e, 32, false));
  if (total.totalCount === 0) return undefined;
  const ms = (us: number) => us / 1000;
  return {
    p50: ms(total.getValueAtPercentile(50)),
    p90: ms(total.getValueAtPercentile(90)),
    p99: ms(total.getValueAtPercentile(99)),
    p999: ms(total.getValueAtPercentile(99.9)),
    max: ms(total.maxValue),
    mean: ms(total.mean),
  };
}

// --- rows --------------------------------------------------------------------------------

const rowKey = (mode: string, placement: string, load: string, connections: number) => `${mode}|${placement}|${load}|${connections}`;
const round3 = (n: number) => Math.round(n * 1000) / 1000;
const round4 = (n: number) => Math.round(n * 10000) / 10000;

function mergeRows(samples: readonly RunSample[]): ResultRow[] {
  const groups = new Map<string, RunSample[]>();
  for (const s of samples) {
    const k = rowKey(s.mode, s.placement, s.load, s.connections);
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k)!.push(s);
  }
  const rows: ResultRow[] = [];
  for (const runs of groups.values()) {
    const first = runs[0]!;
    const requests = runs.reduce((a, r) => a + r.requests, 0);
    const latency = latencyOf(runs.map((r) => r.histogram));
    if (!latency || requests === 0) continue; // nothing answered: no row (the runner fails such runs first)
    const windowS = runs.reduce((a, r) => a + r.windowS, 0);
    const proxies = new Map<string, ProxyFigures>();
    for (const r of runs) {
      for (const p of r.proxies) {
        const have = proxies.get(p.name) ?? { name: p.name, kind: p.kind, node: p.node, cpuS: 0, peakMemoryMiB: null };
        have.cpuS += p.cpuS;
        if (p.peakMemoryKiB !== null) have.peakMemoryMiB = Math.max(have.peakMemoryMiB ?? 0, p.peakMemoryKiB / 1024);
        proxies.set(p.name, have);
      }
    }
    const list = [...proxies.values()].map((p) => ({ ...p, cpuS: round4(p.cpuS), peakMemoryMiB: p.peakMemoryMiB === null ? null : Math.round(p.peakMemoryMiB * 10) / 10 }));
    const proxyCpu = [...proxies.values()].reduce((a, p) => a + p.cpuS, 0);
    const memories = list.map((p) => p.peakMemoryMiB).filter((m): m is number => m !== null);
    rows.push({
      mode: first.mode,
      placement: first.placement,
      load: first.load,
      connections: first.connections,
      targetRate: first.targetRate,
      runs: runs.length,
      requests,
      failures: runs.reduce((a, r) => a + r.failures, 0),
      achievedRate: Math.round((requests / windowS) * 10) / 10,
      windowS: round3(windowS),
      latencyMs: { p50: round3(latency.p50), p90: round3(latency.p90), p99: round3(latency.p99), p999: round3(latency.p999), max: round3(latency.max), mean: round3(latency.mean) },
      addedLatencyMs: null,
      proxyCpuSPer1000: first.mode === 'direct' || list.length === 0 ? null : round4((proxyCpu / requests) * 1000),
      proxyPeakMemoryMiB: first.mode === 'direct' || memories.length === 0 ? null : Math.round(memories.reduce((a, b) => a + b, 0) * 10) / 10,
      proxies: list,
      machineCpuSPer1000: round4((runs.reduce((a, r) => a + r.machineCpuS, 0) / requests) * 1000),
      tlsSessions: runs.every((r) => r.tlsSessions === null || r.tlsSessions === undefined) ? null : runs.reduce((a, r) => a + (r.tlsSessions ?? 0), 0),
    });
  }
  const order = (r: ResultRow) => [BENCH_MODES.indexOf(r.mode), PLACEMENTS.indexOf(r.placement), r.load === 'fixed-rate' ? 0 : 1, r.connections];
  rows.sort((a, b) => {
    const x = order(a);
    const y = order(b);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
    return 0;
  });
  for (const r of rows) {
    if (r.mode === 'direct' || r.load !== 'fixed-rate') continue;
    const base = rows.find((b) => b.mode === 'direct' && b.placement === r.placement && b.load === r.load && b.connections === r.connections);
    if (!base) continue;
    const added: AddedLatencyMs = {
      p50: round3(r.latencyMs.p50 - base.latencyMs.p50),
      p90: round3(r.latencyMs.p90 - base.latencyMs.p90),
      p99: round3(r.latencyMs.p99 - base.latencyMs.p99),
      p999: round3(r.latencyMs.p999 - base.latencyMs.p999),
    };
    r.addedLatencyMs = added;
  }
  return rows;
}

// --- goals -------------------------------------------------------------------------------

function fixedRows(rows: readonly ResultRow[], mode: BenchMode, placement?: Placement): ResultRow[] {
  return rows.filter((r) => r.mode === mode && r.load === 'fixed-rate' && (placement === undefined || r.placement === placement));
}

/**
 * A ratio goal: numerator mode's added latency over the denominator mode's, at each
 * connection count (and placement) where both have a row; met when every ratio is at most
 * the target. A denominator at or below 0 (the reference added nothing measurable) makes
 * that ratio undefined, and the goal undecided unless another count already fails it.
 */
function ratioGoal(rows: readonly ResultRow[], id: string, description: string, num: BenchMode, den: BenchMode, pct: 'p50' | 'p99', target: number, placements: readonly Placement[]): Goal {
  const parts: string[] = [];
  const ratios: number[] = [];
  let undefinedRatio = false;
  for (const placement of placements) {
    for (const a of fixedRows(rows, num, placement)) {
      const b = fixedRows(rows, den, placement).find((r) => r.connections === a.connections);
      if (!a.addedLatencyMs || !b?.addedLatencyMs) continue;
      const x = a.addedLatencyMs[pct];
      const y = b.addedLatencyMs[pct];
      const label = `${placements.length > 1 ? `${placement} ` : ''}c=${a.connections}: ${x.toFixed(3)} / ${y.toFixed(3)} ms`;
      if (y <= 0) {
        undefinedRatio = true;
        parts.push(`${label} (undefined: ${den} added nothing)`);
        continue;
      }
      ratios.push(x / y);
      parts.push(`${label} = ${(x / y).toFixed(2)}`);
    }
  }
  if (ratios.length === 0) {
    return { id, description, met: null, value: null, target, detail: parts.length ? parts.join('; ') : `no ${num} and ${den} rows to compare (a mode was skipped or not run)` };
  }
  const worst = Math.max(...ratios);
  const met = worst <= target ? (undefinedRatio ? null : true) : false;
  return { id, description, met, value: Math.round(worst * 100) / 100, target, detail: `largest ratio over connection counts; ${parts.join('; ')}` };
}

function buildGoals(rows: readonly ResultRow[]): Goal[] {
  const goals: Goal[] = [
    ratioGoal(rows, 'ambient-ebpf-same-node-p50', 'ambient-ebpf, same node: added p50 at most 0.6x the nodemesh sidecar’s', 'ambient-ebpf', 'sidecar', 'p50', 0.6, ['same-node']),
    ratioGoal(rows, 'ambient-ebpf-cross-node-p50', 'ambient-ebpf, across nodes: added p50 at most 1.0x the nodemesh sidecar’s', 'ambient-ebpf', 'sidecar', 'p50', 1.0, ['cross-node']),
    ratioGoal(rows, 'sidecar-vs-envoy-p99', 'nodemesh sidecar: added p99 within 1.5x the Envoy sidecar’s', 'sidecar', 'envoy-sidecar', 'p99', 1.5, PLACEMENTS),
  ];

  // Node proxy CPU: each node agent of every ambient-ebpf fixed-rate row, per 1000 requests.
  const cpu: string[] = [];
  let worstCpu = -Infinity;
  for (const r of fixedRows(rows, 'ambient-ebpf')) {
    for (const p of r.proxies.filter((x) => x.kind === 'node-agent')) {
      const per1000 = (p.cpuS / r.requests) * 1000;
      worstCpu = Math.max(worstCpu, per1000);
      cpu.push(`${r.placement} c=${r.connections} ${p.name} ${per1000.toFixed(4)}`);
    }
  }
  goals.push(cpu.length === 0
    ? { id: 'node-proxy-cpu', description: 'node proxy (ambient-ebpf) CPU at most 0.1 CPU-s per 1000 requests', met: null, value: null, target: 0.1, detail: 'no ambient-ebpf rows' }
    : { id: 'node-proxy-cpu', description: 'node proxy (ambient-ebpf) CPU at most 0.1 CPU-s per 1000 requests', met: worstCpu <= 0.1, value: round4(worstCpu), target: 0.1, detail: `largest per node agent over fixed-rate rows; ${cpu.join('; ')}` });

  // Node memory: the largest node-agent peak against the smallest Envoy sidecar's peak.
  const agentPeaks = new Map<string, number>();
  for (const r of rows.filter((x) => x.mode === 'ambient-ebpf')) {
    for (const p of r.proxies) if (p.kind === 'node-agent' && p.peakMemoryMiB !== null) agentPeaks.set(p.name, Math.max(agentPeaks.get(p.name) ?? 0, p.peakMemoryMiB));
  }
  const envoyPeaks = new Map<string, number>();
  for (const r of rows.filter((x) => x.mode === 'envoy-sidecar')) {
    for (const p of r.proxies) if (p.peakMemoryMiB !== null) envoyPeaks.set(p.name, Math.max(envoyPeaks.get(p.name) ?? 0, p.peakMemoryMiB));
  }
  const memDescription = 'node proxy (ambient-ebpf) peak memory below one Envoy sidecar’s';
  if (agentPeaks.size === 0 || envoyPeaks.size === 0) {
    goals.push({ id: 'node-memory', description: memDescription, met: null, value: agentPeaks.size ? Math.max(...agentPeaks.values()) : null, target: envoyPeaks.size ? Math.min(...envoyPeaks.values()) : 0, detail: `${agentPeaks.size ? '' : 'no ambient-ebpf node agent figures; '}${envoyPeaks.size ? '' : 'no Envoy sidecar figures (envoy-sidecar skipped or not run)'}` });
  } else {
    const agent = Math.max(...agentPeaks.values());
    const envoy = Math.min(...envoyPeaks.values());
    const show = (m: Map<string, number>) => [...m].map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ');
    goals.push({ id: 'node-memory', description: memDescription, met: agent < envoy, value: agent, target: envoy, detail: `largest node agent peak (VmHWM, MiB: ${show(agentPeaks)}) against the smallest Envoy sidecar peak (${show(envoyPeaks)})` });
  }
  return goals;
}

// --- report ------------------------------------------------------------------------------

export function buildReport(raw: RawBench): BenchReport {
  const measured = new Set(raw.modes.filter((m) => m.status === 'measured').map((m) => m.name));
  const rows = mergeRows(raw.samples.filter((s) => measured.has(s.mode)));
  const modes = BENCH_MODES.map((name) => raw.modes.find((m) => m.name === name) ?? { name, status: 'skipped' as const, reason: 'not selected (--modes)', description: MODE_DESCRIPTIONS[name] });
  return {
    $schema: REPORT_SCHEMA_ID,
    version: REPORT_VERSION,
    generatedAt: raw.generatedAt,
    source: raw.source,
    command: raw.command,
    machine: raw.machine,
    topology: raw.topology,
    settings: raw.settings,
    load: raw.load,
    modes,
    results: rows,
    scale: raw.scale ?? null,
    goals: [...buildGoals(rows), ...(raw.scale ? scaleGoals(raw.scale) : [])],
    elapsedS: Math.round(raw.elapsedS),
  };
}

export const MODE_DESCRIPTIONS: Record<BenchMode, string> = {
  direct: 'no mesh: client to Service through the simulator’s kube-proxy',
  sidecar: 'nodemesh sidecars in the client and server pods (two proxy hops; mutual TLS between them, each with its own pod\'s certificate)',
  'ambient-iptables': 'node agents with --capture iptables, pods annotated ambient (one node proxy per node; across nodes the mTLS tunnel: HTTP/2 CONNECT in TLS 1.3 with workload certificates)',
  'ambient-ebpf': 'node agents with --capture ebpf, pods annotated ambient',
  'ambient-ebpf-sockmap': 'node agents with --capture ebpf --sk-msg (sockmap between app and proxy), pods annotated ambient',
  'envoy-sidecar': 'Envoy sidecars in the client and server pods, iptables redirect (15001/15006), Istio-style static bootstrap, mutual TLS 1.3 between the sidecars with the same kind of certificates (Istio\'s auto mTLS)',
};

// --- markdown ----------------------------------------------------------------------------

const num = (n: number | null | undefined, digits = 3) => (n === null || n === undefined || !Number.isFinite(n) ? '-' : n.toFixed(digits));
const signed = (n: number | null | undefined, digits = 3) => (n === null || n === undefined || !Number.isFinite(n) ? '-' : `${n >= 0 ? '+' : ''}${n.toFixed(digits)}`);
const PLACEMENT_TITLE: Record<Placement, string> = { 'same-node': 'same node', 'cross-node': 'across nodes' };

function skipCell(m: ModeStatus): string {
  return `skipped: ${(m.reason ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ')}`;
}

/** The headline table: one row per mode (skipped modes say why) at one placement and connection count. */
export function headlineTable(report: BenchReport, placement: Placement): string {
  const c = report.settings.headlineConnections;
  const lines = [
    '| mode | p50 ms | p90 ms | p99 ms | p999 ms | added p50 | added p99 | req/s | proxy CPU-s / 1000 req | proxy peak MiB |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const m of report.modes) {
    const r = report.results.find((x) => x.mode === m.name && x.placement === placement && x.load === 'fixed-rate' && x.connections === c);
    if (m.status === 'skipped' || !r) {
      lines.push(`| ${m.name} | ${m.status === 'skipped' ? skipCell(m) : 'no result'} | | | | | | | | |`);
      continue;
    }
    lines.push(`| ${m.name} | ${num(r.latencyMs.p50)} | ${num(r.latencyMs.p90)} | ${num(r.latencyMs.p99)} | ${num(r.latencyMs.p999)} | ${signed(r.addedLatencyMs?.p50)} | ${signed(r.addedLatencyMs?.p99)} | ${num(r.achievedRate, 0)} | ${num(r.proxyCpuSPer1000, 4)} | ${num(r.proxyPeakMemoryMiB, 1)} |`);
  }
  return lines.join('\n');
}

export function renderMarkdown(report: BenchReport): string {
  const s = report.settings;
  const out: string[] = [];
  out.push('# nodemesh bench');
  out.push('');
  out.push(`\`${report.command}\` — ${report.generatedAt}, source ${report.source}, ${report.elapsedS} s`);
  out.push('');
  out.push(`Machine: ${report.machine.cpus} CPUs (${report.machine.cpuModel}), ${report.machine.memoryGiB} GiB, Linux ${report.machine.kernel}. ` +
    `Load: ${report.load.tool} ${report.load.version} (${report.load.reason}), HTTP/1.1 keep-alive POST of ${s.payloadBytes} B to the L7 test app’s /echo (the body comes back). ` +
    `Open loop at ${s.rate} req/s with ${s.connections.join('/')} connections, ${s.durationS} s per run` +
    (s.maxThroughput ? `, plus a maximum-throughput run (${s.maxThroughput.connections} connections, ${s.maxThroughput.durationS} s)` : '') +
    `; ${s.warmupS} s warm-up before each block excluded; ${s.rounds} interleaved round${s.rounds === 1 ? '' : 's'} (mode order reversed every other round), percentiles from the rounds’ merged histograms.`);
  out.push('');
  out.push(`Topology: ${report.topology}`);
  out.push('');
  out.push('Latency in ms; added = the mode minus `direct` at the same placement and connection count; proxy CPU counts every proxy on the path (both sidecars; the node agent of each node involved); peak memory is the sum of those proxies’ VmHWM.');
  for (const placement of s.placements) {
    out.push('');
    out.push(`## ${s.rate} req/s, ${s.headlineConnections} connections, ${PLACEMENT_TITLE[placement]}`);
    out.push('');
    out.push(headlineTable(report, placement));
  }
  out.push('');
  out.push('## Every connection count');
  out.push('');
  out.push('| mode | placement | conns | p50 | p90 | p99 | p999 | added p50 | added p90 | added p99 | added p999 | req/s | failures | proxy CPU-s / 1000 | proxy peak MiB | machine CPU-s / 1000 | TLS sessions (block) / requests |');
  out.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of report.results.filter((x) => x.load === 'fixed-rate')) {
    const a = r.addedLatencyMs;
    out.push(`| ${r.mode} | ${r.placement} | ${r.connections} | ${num(r.latencyMs.p50)} | ${num(r.latencyMs.p90)} | ${num(r.latencyMs.p99)} | ${num(r.latencyMs.p999)} | ${signed(a?.p50)} | ${signed(a?.p90)} | ${signed(a?.p99)} | ${signed(a?.p999)} | ${num(r.achievedRate, 0)} | ${r.failures} | ${num(r.proxyCpuSPer1000, 4)} | ${num(r.proxyPeakMemoryMiB, 1)} | ${num(r.machineCpuSPer1000, 4)} | ${r.tlsSessions === null ? '–' : `${r.tlsSessions} / ${r.requests}`} |`);
  }
  const max = report.results.filter((x) => x.load === 'max-throughput');
  if (max.length) {
    out.push('');
    out.push('## Maximum throughput');
    out.push('');
    out.push('Closed loop: each connection sends its next request when the answer is in. Client, server and proxies share the machine’s cores, so this is the rate the whole path sustains here, not a proxy’s ceiling.');
    out.push('');
    out.push('| mode | placement | conns | req/s | p50 | p99 | failures | proxy CPU-s / 1000 | proxy peak MiB | machine CPU-s / 1000 |');
    out.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of max) {
      out.push(`| ${r.mode} | ${r.placement} | ${r.connections} | ${num(r.achievedRate, 0)} | ${num(r.latencyMs.p50)} | ${num(r.latencyMs.p99)} | ${r.failures} | ${num(r.proxyCpuSPer1000, 4)} | ${num(r.proxyPeakMemoryMiB, 1)} | ${num(r.machineCpuSPer1000, 4)} |`);
    }
  }
  if (report.scale) out.push(...scaleMarkdown(report.scale));
  out.push('');
  out.push('## Goals');
  out.push('');
  for (const g of report.goals) {
    const verdict = g.met === null ? 'undecided' : g.met ? 'met' : 'NOT met';
    out.push(`- **${verdict}** — ${g.description}: ${g.value === null ? 'no figure' : g.value} (target ${g.target}). ${g.detail}`);
  }
  const skipped = report.modes.filter((m) => m.status === 'skipped');
  out.push('');
  out.push('## Modes');
  out.push('');
  for (const m of report.modes) out.push(`- \`${m.name}\`: ${m.description}${m.proxyVersion ? ` (${m.proxyVersion})` : ''}${m.status === 'skipped' ? ` — **skipped**: ${m.reason}` : ''}`);
  if (skipped.length === 0) out.push('', 'No mode was skipped.');
  out.push('');
  return out.join('\n');
}

// --- svg ---------------------------------------------------------------------------------

const COLORS: Record<BenchMode, string> = {
  direct: '#555555',
  sidecar: '#d62728',
  'ambient-iptables': '#ff7f0e',
  'ambient-ebpf': '#1f77b4',
  'ambient-ebpf-sockmap': '#2ca02c',
  'envoy-sidecar': '#9467bd',
};
const PERCENTILES = ['p50', 'p90', 'p99', 'p999'] as const;

export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** Tick values 1-2-5 per decade covering [lo, hi]. */
export function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo * 0.999 && v <= hi * 1.001) ticks.push(Number(v.toPrecision(3)));
    }
  }
  return ticks;
}

/**
 * A grid of panels: one row per percentile (p50, p90, p99, p999), one column per placement;
 * in each, latency (log scale, ms) against connection count at the fixed rate. Each mode is
 * one `<g class="series" data-mode="...">` holding its line in every panel; a skipped mode's
 * group is empty and carries data-skipped with the reason (shown in the legend).
 */
export function renderSvg(report: BenchReport): string {
  const conns = report.settings.connections;
  const placements = report.settings.placements;
  const fixed = report.results.filter((r) => r.load === 'fixed-rate');
  const values = fixed.flatMap((r) => PERCENTILES.map((p) => r.latencyMs[p])).filter((v) => v > 0);
  // Half-decade bounds around the data.
  const lo = Math.pow(10, Math.floor(Math.log10(values.length ? Math.min(...values) : 0.1) * 2) / 2);
  let hi = Math.pow(10, Math.ceil(Math.log10(values.length ? Math.max(...values) : 10) * 2) / 2);
  if (hi <= lo) hi = lo * 10;

  const panelW = 330;
  const panelH = 170;
  const left = 70;
  const top = 70;
  const gapX = 40;
  const gapY = 50;
  const legendH = 22 * Math.ceil(report.modes.length / 2) + 20;
  const width = left + placements.length * panelW + (placements.length - 1) * gapX + 30;
  const legendTop = top + PERCENTILES.length * panelH + (PERCENTILES.length - 1) * gapY + 50;
  const scalePanel = report.scale ? scaleSvg(report.scale, left, legendTop + legendH + 20, width - left - 20, escapeXml) : undefined;
  const height = legendTop + legendH + (scalePanel ? scalePanel.height + 30 : 0);
  const x = (col: number, i: number) => left + col * (panelW + gapX) + (conns.length === 1 ? panelW / 2 : 20 + (i * (panelW - 40)) / (conns.length - 1));
  const y = (row: number, v: number) => {
    const t = (Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo));
    return top + row * (panelH + gapY) + panelH - t * panelH;
  };
  const s = report.settings;
  const out: string[] = [];
  out.push(`<?xml version="1.0" encoding="UTF-8"?>`);
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`);
  out.push(`<title>${escapeXml(`nodemesh bench: latency percentiles by mode and connection count at ${s.rate} req/s`)}</title>`);
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="${left}" y="24" font-size="15" font-weight="bold">${escapeXml(`Latency at ${s.rate} req/s, ${s.payloadBytes} B POST (${report.load.tool}), ms, log scale`)}</text>`);
  out.push(`<text x="${left}" y="42" fill="#555555">${escapeXml(`${report.source} · ${s.rounds} round(s) of ${s.durationS} s · ${report.machine.cpus} CPUs`)}</text>`);

  // Axes and grids.
  out.push('<g class="axes">');
  PERCENTILES.forEach((p, row) => {
    placements.forEach((placement, col) => {
      const x0 = left + col * (panelW + gapX);
      const y0 = top + row * (panelH + gapY);
      out.push(`<rect x="${x0}" y="${y0}" width="${panelW}" height="${panelH}" fill="none" stroke="#999999"/>`);
      out.push(`<text x="${x0 + panelW / 2}" y="${y0 - 6}" text-anchor="middle" font-weight="bold">${escapeXml(`${p} · ${PLACEMENT_TITLE[placement]}`)}</text>`);
      for (const t of logTicks(lo, hi)) {
        const yy = y(row, t).toFixed(1);
        out.push(`<line x1="${x0}" y1="${yy}" x2="${x0 + panelW}" y2="${yy}" stroke="#eeeeee"/>`);
        if (col === 0) out.push(`<text x="${x0 - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle">${t}</text>`);
      }
      conns.forEach((c, i) => {
        out.push(`<text x="${x(col, i).toFixed(1)}" y="${y0 + panelH + 14}" text-anchor="middle">${c}</text>`);
      });
      if (row === PERCENTILES.length - 1) out.push(`<text x="${x0 + panelW / 2}" y="${y0 + panelH + 30}" text-anchor="middle">connections</text>`);
    });
  });
  out.push('</g>');

  // Series: one group per mode.
  for (const m of report.modes) {
    const color = COLORS[m.name];
    if (m.status === 'skipped') {
      out.push(`<g class="series" data-mode="${m.name}" data-skipped="${escapeXml(m.reason ?? '')}"/>`);
      continue;
    }
    out.push(`<g class="series" data-mode="${m.name}" stroke="${color}" fill="${color}">`);
    PERCENTILES.forEach((p, row) => {
      placements.forEach((placement, col) => {
        const pts = conns
          .map((c, i) => ({ i, r: fixed.find((r) => r.mode === m.name && r.placement === placement && r.connections === c) }))
          .filter((q): q is { i: number; r: ResultRow } => q.r !== undefined && q.r.latencyMs[p] > 0);
        if (pts.length === 0) return;
        const coords = pts.map((q) => `${x(col, q.i).toFixed(1)},${y(row, q.r.latencyMs[p]).toFixed(1)}`);
        out.push(`<polyline data-percentile="${p}" data-placement="${placement}" fill="none" stroke-width="2" points="${coords.join(' ')}"/>`);
        for (const q of pts) out.push(`<circle cx="${x(col, q.i).toFixed(1)}" cy="${y(row, q.r.latencyMs[p]).toFixed(1)}" r="2.5"><title>${escapeXml(`${m.name} ${placement} c=${conns[q.i]} ${p} ${q.r.latencyMs[p]} ms`)}</title></circle>`);
      });
    });
    out.push('</g>');
  }

  // Legend.
  const ly = top + PERCENTILES.length * panelH + (PERCENTILES.length - 1) * gapY + 50;
  out.push('<g class="legend">');
  report.modes.forEach((m, i) => {
    const lx = left + (i % 2) * (panelW + gapX);
    const yy = ly + Math.floor(i / 2) * 22;
    const label = m.status === 'skipped' ? `${m.name} (skipped: ${m.reason ?? ''})` : m.name;
    const shown = label.length > 60 ? `${label.slice(0, 57)}...` : label;
    out.push(`<line x1="${lx}" y1="${yy}" x2="${lx + 24}" y2="${yy}" stroke="${COLORS[m.name]}" stroke-width="3"${m.status === 'skipped' ? ' stroke-dasharray="2,3"' : ''}/>`);
    out.push(`<text x="${lx + 30}" y="${yy}" dominant-baseline="middle">${escapeXml(shown)}</text>`);
  });
  out.push('</g>');
  if (scalePanel) out.push(...scalePanel.lines);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
