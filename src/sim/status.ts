import { existsSync } from 'node:fs';
import { DEFAULT_SIM_NAME, netnsPrefix, validateSimName } from './names';
import { listNetns, netnsUsable } from './netns';
import { cmdline } from './processes';
import { checkSealed } from './seal';
import { loadSimState, type SimState } from './state';

/**
 * `nodemesh sim status`: the recorded simulation, checked against the machine: does each
 * namespace and cgroup still exist, is anything with the sim's prefix unaccounted for,
 * is it still sealed.
 */

export interface SimNodeStatus {
  name: string;
  index: number;
  netns: string;
  netnsPath: string;
  fabricIP: string;
  podCIDR: string;
  cgroup: string;
  agentCgroup: string;
  netnsOk: boolean;
  cgroupOk: boolean;
  /** The node's DNS server (src/sim/dns/node-dns.ts) runs: its pid is alive and still `sim dns-serve`. */
  dnsOk: boolean;
  dnsPid: number | undefined;
}

export interface SimPodStatus {
  key: string;
  node: string;
  ips: string[];
  mode: string;
  netns: string;
  netnsPath: string;
  cgroup: string;
  netnsOk: boolean;
  cgroupOk: boolean;
}

export interface SimStatus {
  name: string;
  phase: SimState['phase'];
  healthy: boolean;
  state: SimState;
  fabricOk: boolean;
  nodes: SimNodeStatus[];
  pods: SimPodStatus[];
  /** Namespaces with the sim's prefix that the state does not list. */
  strayNetns: string[];
  /** Seal problems (empty when sealed). */
  sealProblems: string[];
}

/** Throws ERR_NM_SIM_NOT_FOUND when the sim does not exist. */
export async function simStatus(name: string = DEFAULT_SIM_NAME): Promise<SimStatus> {
  validateSimName(name);
  const state = loadSimState(name);
  const present = new Set((await listNetns()).filter((n) => n.startsWith(netnsPrefix(name))));
  const usable = async (netns: string): Promise<boolean> => present.has(netns) && (await netnsUsable(netns));
  const nodes: SimNodeStatus[] = [];
  for (const n of state.nodes) {
    nodes.push({
      name: n.name,
      index: n.index,
      netns: n.netns,
      netnsPath: n.netnsPath,
      fabricIP: n.fabricIP,
      podCIDR: n.podCIDR,
      cgroup: n.cgroup,
      agentCgroup: n.agentCgroup,
      netnsOk: await usable(n.netns),
      cgroupOk: existsSync(n.podsCgroup) && existsSync(n.agentCgroup),
      dnsOk: n.dnsPid !== undefined && (cmdline(n.dnsPid)?.includes('dns-serve') ?? false),
      dnsPid: n.dnsPid,
    });
  }
  const pods: SimPodStatus[] = [];
  for (const p of state.pods) {
    pods.push({
      key: p.key,
      node: p.node,
      ips: p.ips,
      mode: p.mode,
      netns: p.netns,
      netnsPath: p.netnsPath,
      cgroup: p.cgroup,
      netnsOk: await usable(p.netns),
      cgroupOk: existsSync(p.cgroup),
    });
  }
  const known = new Set([state.fabric.netns, ...state.nodes.map((n) => n.netns), ...state.pods.map((p) => p.netns)]);
  const strayNetns = [...present].filter((n) => !known.has(n)).sort();
  const fabricOk = await usable(state.fabric.netns);
  const sealProblems = await checkSealed(state);
  const healthy =
    state.phase === 'ready' && fabricOk && nodes.every((n) => n.netnsOk && n.cgroupOk && n.dnsOk) && pods.every((p) => p.netnsOk && p.cgroupOk) && sealProblems.length === 0;
  return { name, phase: state.phase, healthy, state, fabricOk, nodes, pods, strayNetns, sealProblems };
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

const yesNo = (ok: boolean): string => (ok ? 'ok' : 'MISSING');

/** The human-readable status (what `nodemesh sim status` prints). */
export function formatStatus(status: SimStatus): string {
  const s = status.state;
  const lines = [
    `simulation ${s.name}: ${s.phase}${status.healthy ? '' : ' (UNHEALTHY)'}; source ${s.source}; iptables ${s.iptablesBackend}; state ${s.stateFile}`,
    `fabric ${s.fabric.netns}: ${yesNo(status.fabricOk)}`,
    '',
    table([
      ['NODE', 'NETNS', 'FABRIC IP', 'POD CIDR', 'AGENT CGROUP', 'NETNS', 'CGROUP', 'DNS'],
      ...status.nodes.map((n) => [n.name, n.netns, n.fabricIP, n.podCIDR, n.agentCgroup, yesNo(n.netnsOk), yesNo(n.cgroupOk), n.dnsOk ? `ok (pid ${n.dnsPid})` : 'DOWN']),
    ]),
    '',
    table([
      ['POD', 'NODE', 'IPS', 'MODE', 'NETNS', 'NETNS', 'CGROUP'],
      ...status.pods.map((p) => [p.key, p.node, p.ips.join(','), p.mode, p.netns, yesNo(p.netnsOk), yesNo(p.cgroupOk)]),
    ]),
  ];
  if (s.services.length > 0) {
    lines.push('', table([['SERVICE', 'CLUSTER IPS', 'PORTS'], ...s.services.map((svc) => [svc.key, svc.clusterIPs.join(',') || 'None', svc.ports.map((p) => `${p.port}/${p.protocol}->${p.endpoints.join('|') || '(no endpoints)'}`).join(' ')])]));
  }
  if (s.rejected.length > 0) lines.push('', 'not applied:', ...s.rejected.map((r) => `  ${r.reason}`));
  if (status.strayNetns.length > 0) lines.push('', `namespaces with this sim's prefix that the state does not list: ${status.strayNetns.join(', ')}`);
  if (status.sealProblems.length > 0) lines.push('', 'NOT SEALED:', ...status.sealProblems.map((p) => `  ${p}`));
  return `${lines.join('\n')}\n`;
}
