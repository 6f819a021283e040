import { existsSync, readFileSync } from 'node:fs';

/** Reading what the agents report, for the integration suites: Prometheus text and access-log lines. */

export type Labels = Record<string, string>;

/** Every sample of a metric in Prometheus text, with its labels. */
export function samples(text: string, name: string): Array<{ labels: Labels; value: number }> {
  const out: Array<{ labels: Labels; value: number }> = [];
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

export interface AccessLine {
  source_principal: string | null;
  connection_security_policy: string;
  kind: string;
  reporter: string;
  source_workload: string | null;
  source_namespace: string | null;
  source_address: string | null;
  destination_workload: string | null;
  destination_service: string | null;
  upstream_host: string | null;
  route: string | null;
  method: string | null;
  path: string | null;
  protocol: string | null;
  response_code: number | null;
  grpc_status: number | null;
  response_flags: string;
  response_code_details?: string | null;
  audit_policies?: string | null;
  bytes_received: number;
  bytes_sent: number;
  request_id: string | null;
  traceparent: string | null;
  attempts: number;
  duration_ms: number;
}

export function accessLines(file: string): AccessLine[] {
  if (!existsSync(file)) return [];
  const out: AccessLine[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const o = JSON.parse(line) as AccessLine & { component?: string };
      if (o.component === 'access') out.push(o);
    } catch {
      /* a line still being written */
    }
  }
  return out;
}

