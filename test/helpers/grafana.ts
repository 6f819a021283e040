import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

/**
 * Grafana's side of a dashboard, for the suite that evaluates the shipped dashboards'
 * queries (test/dashboards.test.ts): the panels and their PromQL targets, the template
 * variables, and the substitution Grafana's Prometheus data source performs before it
 * sends a query (variables, $__interval, $__rate_interval, $__range).
 */

export interface GrafanaTarget {
  refId: string;
  expr: string;
  /** Grafana asks for an instant query (tables); otherwise a range query over the dashboard's time range. */
  instant: boolean;
}

export interface GrafanaPanel {
  id: number;
  title: string;
  type: string;
  targets: GrafanaTarget[];
  maxDataPoints?: number;
  /** The panel's minimum interval ("30s"), if it sets one. */
  interval?: string;
}

export interface GrafanaVariable {
  name: string;
  type: string;
  /** custom: "a,b"; query: "query_result(...)" or "label_values(...)". */
  query: string;
  regex?: string;
  multi: boolean;
  includeAll: boolean;
  allValue?: string;
  /** The dashboard's saved current value ("$__all" for All). */
  current?: string | string[];
}

export interface GrafanaDashboard {
  file: string;
  title: string;
  /** The panels that query Prometheus (rows and text panels left out), rows flattened. */
  panels: GrafanaPanel[];
  variables: GrafanaVariable[];
  /** The default time range ("now-15m" to "now"), in ms. */
  rangeMs: number;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

export function loadDashboard(file: string): GrafanaDashboard {
  const d = JSON.parse(readFileSync(file, 'utf8')) as Json;
  const panels: GrafanaPanel[] = [];
  const walk = (list: Json[] | undefined): void => {
    for (const p of list ?? []) {
      if (p.type === 'row') { walk(p.panels); continue; }
      const targets: GrafanaTarget[] = (p.targets ?? [])
        .filter((t: Json) => typeof t.expr === 'string' && t.expr.trim() !== '' && t.hide !== true)
        .map((t: Json, i: number) => ({ refId: String(t.refId ?? String.fromCharCode(65 + i)), expr: t.expr as string, instant: t.instant === true }));
      if (targets.length > 0) panels.push({ id: p.id, title: String(p.title ?? ''), type: p.type, targets, maxDataPoints: p.maxDataPoints, interval: p.interval || undefined });
    }
  };
  walk(d.panels);
  const variables: GrafanaVariable[] = (d.templating?.list ?? []).map((v: Json) => ({
    name: v.name,
    type: v.type,
    query: typeof v.query === 'string' ? v.query : String(v.query?.query ?? ''),
    regex: v.regex || undefined,
    multi: v.multi === true,
    includeAll: v.includeAll === true,
    allValue: v.allValue || undefined,
    current: v.current?.value,
  }));
  const from = /^now-(\d+)([smhd])$/.exec(String(d.time?.from ?? 'now-1h'));
  if (!from || d.time?.to !== 'now') throw new Error(`${file}: time range ${JSON.stringify(d.time)} is not now-N..now`);
  return { file: basename(file), title: d.title, panels, variables, rangeMs: Number(from[1]) * UNIT_MS[from[2]!]! };
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseGrafanaDuration(text: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(text);
  if (!m) throw new Error(`not a Grafana interval: ${text}`);
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

/** Grafana's rangeutil.roundInterval: the "nice" interval at or near a raw one (ms). */
export function roundInterval(ms: number): number {
  const steps: Array<[number, number]> = [
    [15, 10], [35, 20], [75, 50], [150, 100], [350, 200], [750, 500], [1500, 1000], [3500, 2000], [7500, 5000],
    [12_500, 10_000], [17_500, 15_000], [25_000, 20_000], [45_000, 30_000], [90_000, 60_000], [210_000, 120_000],
    [450_000, 300_000], [750_000, 600_000], [1_050_000, 900_000], [1_500_000, 1_200_000], [2_700_000, 1_800_000],
    [5_400_000, 3_600_000], [9_000_000, 7_200_000], [16_200_000, 10_800_000], [24_300_000, 21_600_000],
    [54_000_000, 43_200_000], [129_600_000, 86_400_000],
  ];
  for (const [below, value] of steps) if (ms < below) return value;
  return 604_800_000;
}

/** Formats ms as Grafana writes intervals into queries: the largest whole unit. */
export function formatInterval(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

export interface Intervals {
  intervalMs: number;
  rateIntervalMs: number;
  rangeMs: number;
}

/**
 * $__interval and $__rate_interval of a panel, as Grafana computes them: the range over
 * the panel's data points, rounded, and at least the data source's scrape interval (or the
 * panel's own minimum); $__rate_interval = max($__interval + scrape interval, 4 x scrape
 * interval), so that a rate() window always holds at least two scrapes.
 */
export function panelIntervals(panel: GrafanaPanel, rangeMs: number, scrapeIntervalMs: number, dataPoints = 1000): Intervals {
  const minimum = panel.interval ? parseGrafanaDuration(panel.interval) : scrapeIntervalMs;
  const intervalMs = Math.max(minimum, roundInterval(rangeMs / (panel.maxDataPoints ?? dataPoints)));
  return { intervalMs, rateIntervalMs: Math.max(intervalMs + scrapeIntervalMs, 4 * scrapeIntervalMs), rangeMs };
}

/** A template variable's value: one string, or several (multi-value or All). */
export interface VariableValue {
  value: string | string[];
  multi: boolean;
  includeAll: boolean;
}

/** Grafana's prometheusRegularEscape: what a single-valued variable gets. */
function regularEscape(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/'/g, "\\\\'");
}

/** Grafana's prometheusSpecialRegexEscape: what each value of a multi-value variable gets. */
function regexEscape(value: string): string {
  return value.replace(/\\/g, '\\\\\\\\').replace(/[$^*{}[\]'+?.()|]/g, '\\\\$&');
}

/** Grafana's Prometheus interpolateQueryExpr. */
function formatValue(v: VariableValue): string {
  if (!v.multi && !v.includeAll) return regularEscape(Array.isArray(v.value) ? v.value.join(',') : v.value);
  if (typeof v.value === 'string') return regexEscape(v.value);
  const escaped = v.value.map(regexEscape);
  return escaped.length === 1 ? escaped[0]! : `(${escaped.join('|')})`;
}

/** Grafana's variable syntaxes: $name, ${name}, ${name:format}, [[name]]. */
const VARIABLE = /\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}/g;

/**
 * Substitutes every variable of `expr`. Built-ins ($__interval, $__interval_ms,
 * $__rate_interval, $__range, $__range_s, $__range_ms) come from `intervals`; a variable
 * that is neither a built-in nor in `values` throws, naming it.
 */
export function interpolate(expr: string, values: ReadonlyMap<string, VariableValue>, intervals?: Intervals): string {
  return expr.replace(VARIABLE, (whole, a?: string, b?: string, _bf?: string, c?: string) => {
    const name = a ?? b ?? c!;
    if (name.startsWith('__') && intervals) {
      switch (name) {
        case '__interval': return formatInterval(intervals.intervalMs);
        case '__interval_ms': return String(intervals.intervalMs);
        case '__rate_interval': return formatInterval(intervals.rateIntervalMs);
        case '__rate_interval_ms': return String(intervals.rateIntervalMs);
        case '__range': return `${Math.round(intervals.rangeMs / 1000)}s`;
        case '__range_s': return String(Math.round(intervals.rangeMs / 1000));
        case '__range_ms': return String(intervals.rangeMs);
        default: break;
      }
    }
    const v = values.get(name);
    if (!v) throw new Error(`the query uses ${whole}, which has no value: ${expr}`);
    return formatValue(v);
  });
}

/** The PromQL inside a query variable's `query_result(...)`; undefined for other kinds. */
export function queryResultExpr(query: string): string | undefined {
  const m = /^\s*query_result\(([\s\S]*)\)\s*$/.exec(query);
  return m?.[1];
}

/**
 * The options of a query_result() variable, as Grafana derives them: each result series
 * as text (`name{a="x",b="y"}`) through the variable's regex (its first group), deduplicated.
 */
export function variableOptions(series: ReadonlyArray<Record<string, string>>, regex: string | undefined): string[] {
  let re: RegExp | undefined;
  if (regex) {
    const m = /^\/(.*)\/([gimsuy]*)$/.exec(regex);
    re = m ? new RegExp(m[1]!, m[2]!) : new RegExp(regex);
  }
  const out: string[] = [];
  for (const labels of series) {
    const { __name__: name = '', ...rest } = labels;
    const text = `${name}{${Object.entries(rest).map(([k, v]) => `${k}="${v}"`).join(',')}}`;
    let value = text;
    if (re) {
      const m = re.exec(text);
      if (!m) continue;
      value = m[1] ?? m[0];
    }
    if (!out.includes(value)) out.push(value);
  }
  return out;
}
