import type { Histogram, Registry } from 'prom-client';

/**
 * Metric families that keep their own series and plug into a prom-client Registry, for hot
 * paths where prom-client's Counter/Histogram, which validate and re-hash the whole label
 * object on every call, cost too much (see the hot-path note in ./istio-metrics.ts). The
 * caller finds a series' cell once (`cell(key, labels)`) and then updates it directly.
 */

export interface CounterCell {
  value: number;
}

export interface HistogramCell {
  /** Per bucket (not cumulative); the last slot is +Inf. */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

export type Labels = Readonly<Record<string, string>>;

interface ExportValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
  /** prom-client's Registry formats these once per labels object (WeakMap) and appends them. */
  sharedLabels?: Labels;
}

interface ExportedMetric {
  name: string;
  help: string;
  type: string;
  aggregator: string;
  values: ExportValue[];
}

const NO_LABELS: Readonly<Record<string, string>> = Object.freeze({});

/**
 * A metric family whose series IstioMetrics creates and updates directly. It has the shape
 * prom-client's Registry reads (name, help, type, aggregator, get, getForPromString, reset),
 * so `registry.metrics()`, getMetricsAsJSON, merge and resetMetrics treat it as their own.
 * The text exposition passes each series' (stable, frozen) label object as `sharedLabels`,
 * which the Registry formats once and caches, so a scrape costs little per series.
 */
export abstract class Family<C> {
  /** Mutable: prom-client renames counters in OpenMetrics mode. */
  name: string;
  readonly help: string;
  readonly aggregator = 'sum';
  protected readonly series = new Map<string, { labels: Labels; cell: C }>();
  onReset: (() => void) | undefined;

  constructor(name: string, help: string) {
    this.name = name;
    this.help = help;
  }

  abstract readonly type: 'counter' | 'histogram';
  protected abstract newCell(): C;
  protected abstract export(values: ExportValue[], labels: Labels, cell: C): void;

  cell(key: string, labels: Labels): C {
    let s = this.series.get(key);
    if (!s) {
      s = { labels, cell: this.newCell() };
      this.series.set(key, s);
    }
    return s.cell;
  }

  get size(): number {
    return this.series.size;
  }

  reset(): void {
    this.series.clear();
    this.onReset?.();
  }

  async getForPromString(): Promise<ExportedMetric> {
    const values: ExportValue[] = [];
    for (const { labels, cell } of this.series.values()) this.export(values, labels, cell);
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** Label objects merged (prom-client's get() shape), for getMetricsAsJSON and merges. */
  async get(): Promise<ExportedMetric> {
    const data = await this.getForPromString();
    data.values = data.values.map(({ value, labels, metricName, sharedLabels }) => ({
      value,
      labels: Object.assign({}, sharedLabels, labels),
      ...(metricName ? { metricName } : {}),
    }));
    return data;
  }
}

export class CounterFamily extends Family<CounterCell> {
  readonly type = 'counter' as const;
  protected newCell(): CounterCell {
    return { value: 0 };
  }
  protected export(values: ExportValue[], labels: Labels, cell: CounterCell): void {
    values.push({ value: cell.value, labels: NO_LABELS, sharedLabels: labels });
  }
}

export class HistogramFamily extends Family<HistogramCell> {
  readonly type = 'histogram' as const;
  private readonly le: ReadonlyArray<Readonly<Record<string, string | number>>>;
  constructor(name: string, help: string, readonly buckets: readonly number[]) {
    super(name, help);
    this.le = [...buckets.map((b) => Object.freeze({ le: b })), Object.freeze({ le: '+Inf' })];
  }
  protected newCell(): HistogramCell {
    return { counts: new Float64Array(this.buckets.length + 1), sum: 0, count: 0 };
  }
  protected export(values: ExportValue[], labels: Labels, cell: HistogramCell): void {
    const bucketName = `${this.name}_bucket`;
    let acc = 0;
    for (let i = 0; i <= this.buckets.length; i++) {
      acc += cell.counts[i]!;
      values.push({ value: acc, labels: this.le[i] as Record<string, string | number>, metricName: bucketName, sharedLabels: labels });
    }
    values.push({ value: cell.sum, labels: NO_LABELS, metricName: `${this.name}_sum`, sharedLabels: labels });
    values.push({ value: cell.count, labels: NO_LABELS, metricName: `${this.name}_count`, sharedLabels: labels });
  }
}

export function observe(cell: HistogramCell, buckets: readonly number[], value: number): void {
  let i = 0;
  const n = buckets.length;
  while (i < n && value > buckets[i]!) i++;
  cell.counts[i]!++;
  cell.sum += value;
  cell.count++;
}

/** Registers families in a prom-client Registry, which then scrapes them like its own metrics. */
export function registerFamilies(registry: Registry, families: ReadonlyArray<Family<unknown>>): void {
  for (const f of families) registry.registerMetric(f as unknown as Histogram);
}
