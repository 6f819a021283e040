import { join } from 'node:path';
import { adminGet } from '../admin/admin-client';
import { runDirFor } from '../agent/build-agent';
import { NodemeshError } from '../errors';
import type { AuthzCheckReply } from '../proxy/authz-check';
import { parseFlags } from './args';

const HELP = `usage: nodemesh authz check --from NS/POD --to NS/POD[:PORT] [--method M] [--path P]
                            [--header K=V]... [--host H] [--instance NAME | --admin-socket PATH] [--json]

Asks a running agent what its proxy would decide for a call from one pod to another, from
the configuration it enforces now: the authorization policies that apply to the
destination (Istio AuthorizationPolicy, Gateway API XAuthorizationPolicy), the verdict,
and the rule that decided it. With --method or --path the call is an HTTP request (L7);
without, a connection (L4). A source pod in the mesh calls with its SPIFFE ID over mutual
TLS; one outside the mesh calls in plaintext, without a principal.
  --from NS/POD        the calling pod
  --to NS/POD[:PORT]   the destination pod, and its port (default: its first container port)
  --method M, --path P the HTTP request (default method GET, path /)
  --header K=V         a request header (repeatable)
  --host H             the request's authority (default: the destination's address and port)
  --instance NAME      the agent's instance (its node name, or sim-SIM-NODE in the simulator)
  --admin-socket PATH  the agent's admin socket
  --json               the agent's answer as JSON`;

export async function authzCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    console.log(HELP);
    return sub === undefined ? 2 : 0;
  }
  if (sub !== 'check') throw new NodemeshError('ERR_NM_USAGE', `nodemesh authz: unknown subcommand '${sub}'`, { hint: 'run `nodemesh authz --help`' });
  const { values } = parseFlags('authz check', rest, {
    from: { type: 'string' },
    to: { type: 'string' },
    method: { type: 'string' },
    path: { type: 'string' },
    header: { type: 'string', multiple: true },
    host: { type: 'string' },
    instance: { type: 'string' },
    'admin-socket': { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.from || !values.to) throw new NodemeshError('ERR_NM_USAGE', 'nodemesh authz check needs --from NS/POD and --to NS/POD[:PORT]', { hint: 'run `nodemesh authz check --help`' });
  const to = /^(.+\/[^:]+)(?::(\d+))?$/.exec(values.to);
  if (!to) throw new NodemeshError('ERR_NM_USAGE', `--to ${values.to}: write NAMESPACE/POD or NAMESPACE/POD:PORT`);
  const params = new URLSearchParams({ from: values.from, to: to[1]! });
  if (to[2] !== undefined) params.set('port', to[2]);
  for (const k of ['method', 'path', 'host'] as const) if (values[k] !== undefined) params.set(k, values[k]!);
  for (const h of values.header ?? []) params.append('header', h);
  const socket = values['admin-socket'] ?? join(runDirFor(values.instance ?? 'node'), 'admin.sock');
  // A question the agent cannot answer (a pod it does not know) fails with its own code and words.
  const reply = await adminGet<AuthzCheckReply>(socket, `/debug/authz?${params.toString()}`);
  if (values.json) {
    console.log(JSON.stringify(reply, null, 2));
    return 0;
  }
  for (const line of formatAuthzCheck(reply)) console.log(line);
  return 0;
}

export function formatAuthzCheck(r: AuthzCheckReply): string[] {
  const req = r.request.layer === 'L7'
    ? `${r.request.method} ${r.request.path} (host ${r.request.host}${Object.keys(r.request.headers ?? {}).length > 0 ? `, headers ${Object.entries(r.request.headers!).map(([k, v]) => `${k}=${v}`).join(' ')}` : ''})`
    : 'a connection (L4: no HTTP attributes)';
  const lines = [
    `source:      ${r.source.pod} ${r.source.ip} ${r.source.principal ?? '(no principal)'}: ${r.source.why}`,
    `destination: ${r.destination.pod} ${r.destination.ip} port ${r.destination.port}, service account ${r.destination.serviceAccount}${r.destination.services.length > 0 ? `, selected by Service ${r.destination.services.join(', ')}` : ''}`,
    `request:     ${req}`,
    `port ${r.destination.port}: ${r.portNeedsL7 ? 'rules with HTTP conditions apply: the proxy parses HTTP here' : 'no rule needs HTTP here: decided per connection'}`,
    '',
    r.policies.length === 0 ? 'policies:    none apply to the destination' : 'policies that apply:',
    ...r.policies.map((p) => `  ${p.action.padEnd(6)} ${p.kind} ${p.policy}  (${p.scope}; ${p.rules} rule${p.rules === 1 ? '' : 's'})`),
    '',
    `verdict:     ${r.verdict.toUpperCase()}${r.decidedBy ? `, by ${r.decidedBy.kind} ${r.decidedBy.policy} rule ${r.decidedBy.ruleIndex} (${r.decidedBy.action})` : ''}`,
    `why:         ${r.reason}`,
  ];
  for (const a of r.audited) lines.push(`audited:     ${a.kind} ${a.policy} rule ${a.ruleIndex}`);
  return lines;
}
