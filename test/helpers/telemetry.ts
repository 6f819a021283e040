import { existsSync, readFileSync } from 'node:fs';

/** Reading what the agents report, for the integration suites: Prometheus text and access-log lines. */

export { metricSum, samples, type Labels } from '../../src/util/prom-text';

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

