/** Reading Prometheus text exposition (what /metrics serves): samples with their labels. */

export type Labels = Record<string, string>;
export interface Sample { labels: Labels; value: number }

/** Every sample of a metric in Prometheus text, with its labels. */
export function samples(text: string, name: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const close = line.lastIndexOf('}');
    const labels: Labels = {};
    if (close > 0) {
      const body = line.slice(name.length + 1, close);
      for (const m of body.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]!] = m[2]!.replace(/\\(.)/g, '$1');
    }
    out.push({ labels, value: Number(line.slice((close > 0 ? close + 1 : name.length)).trim()) });
  }
  return out;
}

/** The sum of a metric over the series whose labels include every one of `want`. */
export function metricSum(text: string, name: string, want: Labels): number {
  return samples(text, name)
    .filter((s) => Object.entries(want).every(([k, v]) => s.labels[k] === v))
    .reduce((n, s) => n + s.value, 0);
}
