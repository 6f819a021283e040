import { join } from 'node:path';
import { adminGet } from '../admin/admin-client';
import type { CaptureReply, PodRecord } from '../admin/debug-replies';
import { runDirFor } from '../agent/build-agent';
import { parseFlags } from './args';

const HELP = `usage: nodemesh status [--instance NAME | --admin-socket PATH] [--json]

Shows what a running agent captures: its back-end, each pod's status (with the reason
for a pod left uncaptured), each pod's identity (SPIFFE ID) and when its certificate
expires, and the capture counters.
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
  const [pods, capture] = await Promise.all([adminGet<PodRecord[]>(socket, '/debug/pods'), adminGet<CaptureReply>(socket, '/debug/capture')]);
  if (values.json) {
    console.log(JSON.stringify({ capture, pods }, null, 2));
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
  return 0;
}
