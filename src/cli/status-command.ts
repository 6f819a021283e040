import { join } from 'node:path';
import { adminGet } from '../admin/admin-client';
import type { CaptureReply, PodRecord } from '../admin/debug-replies';
import { runDirFor } from '../agent/build-agent';
import type { RouteStatus } from '../routing';
import { parseFlags } from './args';

const HELP = `usage: nodemesh status [--instance NAME | --admin-socket PATH] [--json]

Shows what a running agent captures: its back-end, each pod's status (with the reason
for a pod left uncaptured), each pod's identity (SPIFFE ID) and when its certificate
expires, the capture counters, and each Gateway API route with its status per parent
(Accepted, ResolvedRefs, and what to fix when one is not True).
  --instance NAME      the agent's instance (its node name, or sim-SIM-NODE in the simulator)
  --admin-socket PATH  the agent's admin socket`;

export async function statusCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags('status', argv, {
    instance: { type: 'string' },
    'admin-socket': { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const socket = values['admin-socket'] ?? join(runDirFor(values.instance ?? 'node'), 'admin.sock');
  const [pods, capture, config] = await Promise.all([
    adminGet<PodRecord[]>(socket, '/debug/pods'),
    adminGet<CaptureReply>(socket, '/debug/capture'),
    adminGet<{ routeStatus?: RouteStatus[] }>(socket, '/debug/config'),
  ]);
  const routes = config.routeStatus ?? [];
  if (values.json) {
    console.log(JSON.stringify({ capture, pods, routes }, null, 2));
    return 0;
  }
  console.log(`capture back-end: ${capture.backend}`);
  console.log('');
  console.log(`${'POD'.padEnd(32)} ${'STATUS'.padEnd(9)} ${'IPS'.padEnd(36)} REASON`);
  for (const p of pods) console.log(`${p.key.padEnd(32)} ${p.status.padEnd(9)} ${p.ips.join(',').padEnd(36)} ${p.reason ?? ''}`);
  const identities = pods.filter((p) => p.identity);
  if (identities.length > 0) {
    console.log('');
    console.log(`${'POD'.padEnd(32)} ${'IDENTITY'.padEnd(56)} CERTIFICATE EXPIRES`);
    for (const p of identities) console.log(`${p.key.padEnd(32)} ${p.identity!.padEnd(56)} ${p.certificateExpiry ?? ''}`);
  }
  const counters = Object.entries(capture.counters);
  if (counters.length > 0) {
    console.log('');
    for (const [k, v] of counters) console.log(`${k.padEnd(24)} ${v}`);
  }
  if (routes.length > 0) {
    console.log('');
    console.log(`${'ROUTE'.padEnd(40)} ${'PARENT'.padEnd(32)} ${'ACCEPTED'.padEnd(26)} ${'RESOLVEDREFS'.padEnd(26)} MESSAGE`);
    for (const line of routeLines(routes)) console.log(line);
  }
  return 0;
}

/** One line per route parent; the message of each condition that is not True. */
export function routeLines(routes: readonly RouteStatus[]): string[] {
  const lines: string[] = [];
  for (const r of routes) {
    for (const p of r.parents) {
      const parent = `Service ${p.parentRef.namespace ?? r.namespace}/${p.parentRef.name}${p.parentRef.port === undefined ? '' : `:${p.parentRef.port}`}${p.parentRef.sectionName === undefined ? '' : ` (${p.parentRef.sectionName})`}`;
      const cell = (type: string) => {
        const c = p.conditions.find((x) => x.type === type);
        return c ? `${c.status}/${c.reason}` : '-';
      };
      const messages = p.conditions.filter((c) => c.status !== 'True').map((c) => c.message).join('; ');
      lines.push(`${`${r.kind} ${r.namespace}/${r.name}`.padEnd(40)} ${parent.padEnd(32)} ${cell('Accepted').padEnd(26)} ${cell('ResolvedRefs').padEnd(26)} ${messages}`);
    }
  }
  return lines;
}
