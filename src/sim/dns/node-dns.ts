import { closeSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isIP } from 'node:net';
import { NodemeshError } from '../../errors';
import { logger } from '../../log';
import type { ServiceInfo } from '../../mesh/model';
import { PROXY_NODE_FLAGS } from '../../proxy/node-flags';
import { ensureCgroupDir } from '../cgroup';
import { spawnIn } from '../exec';
import type { HostsPod } from '../hosts';
import { FABRIC_CIDR, FABRIC_CIDR_V6, dnsCgroup, stateDir } from '../names';
import { cmdline, endProcess, logTail, pidAlive } from '../processes';
import type { SimNode, SimPod, StateStore } from '../state';
import { addressBytes } from './message';
import { buildDnsZone } from './zone';

/**
 * The simulation's DNS: one server process per node (`nodemesh sim dns-serve`, in the
 * node's namespace and its cgroup `<node>/dns`, so it goes with its node), answering on
 * port 53 of the node bridge's addresses, which every pod of the node has as its
 * gateway; all of them answer from one zone file that `up` rewrites. Like a cluster's
 * NodeLocal DNSCache, without the upstream: nothing leaves the simulation.
 */

const log = logger('sim-dns');
const CLI = resolve(__dirname, '..', '..', 'cli', 'main.js');
const READY_TIMEOUT_MS = 30_000;
export const DNS_PORT = 53;

export function dnsDir(sim: string): string {
  return join(stateDir(sim), 'dns');
}

export function dnsZoneFile(sim: string): string {
  return join(dnsDir(sim), 'zone.json');
}

export function dnsLogFile(sim: string, node: string): string {
  return join(dnsDir(sim), `${node}.log`);
}

/** Where a node's server answers: its bridge (the pods' gateway), both families. */
export function nodeDnsAddresses(node: Pick<SimNode, 'gateway' | 'gatewayV6'>): string[] {
  return [node.gateway, node.gatewayV6];
}

/** A pod's nameservers: its node's server, in the families the pod has. */
export function podNameservers(pod: Pick<SimPod, 'ips' | 'hostNetwork'>, node: Pick<SimNode, 'gateway' | 'gatewayV6'>): string[] {
  if (pod.hostNetwork) return nodeDnsAddresses(node);
  const families = new Set(pod.ips.map((ip) => isIP(ip)));
  return [...(families.has(4) ? [node.gateway] : []), ...(families.has(6) ? [node.gatewayV6] : [])];
}

/** Writes the zone of the current topology (atomically: the servers reread it on the next query). */
export function writeDnsZone(store: StateStore, services: readonly ServiceInfo[], pods: readonly HostsPod[]): void {
  const { state } = store;
  mkdirSync(dnsDir(state.name), { recursive: true, mode: 0o755 });
  const reverse = [FABRIC_CIDR, FABRIC_CIDR_V6, ...state.nodes.flatMap((n) => [n.podCIDR, n.podCIDRv6])];
  const file = dnsZoneFile(state.name);
  writeFileSync(`${file}.tmp`, `${JSON.stringify(buildDnsZone(services, pods, reverse))}\n`);
  renameSync(`${file}.tmp`, file);
}

/** /proc/net/{udp,udp6}'s text of "address:port" (the kernel prints each 32-bit word in host order). */
function procNetAddress(address: string, port: number): string {
  const bytes = addressBytes(address, isIP(address) === 6 ? 16 : 4);
  let hex = '';
  for (let i = 0; i < bytes.length; i += 4) hex += bytes.readUInt32LE(i).toString(16).toUpperCase().padStart(8, '0');
  return `${hex}:${port.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** True when every address has a UDP socket bound on `port` in the process's namespace. */
function boundInNetns(pid: number, addresses: readonly string[], port: number): boolean {
  try {
    const table = readFileSync(`/proc/${pid}/net/udp`, 'utf8') + readFileSync(`/proc/${pid}/net/udp6`, 'utf8');
    return addresses.every((a) => table.includes(` ${procNetAddress(a, port)} `));
  } catch {
    return false;
  }
}

function liveServer(node: SimNode, zoneFile: string): boolean {
  if (node.dnsPid === undefined || !pidAlive(node.dnsPid)) return false;
  const argv = cmdline(node.dnsPid);
  const want = nodeDnsAddresses(node);
  return !!argv && argv.includes('dns-serve') && argv.includes(zoneFile) && want.every((a) => argv.includes(a)) && JSON.stringify(node.dnsAddresses) === JSON.stringify(want);
}

async function startServer(store: StateStore, node: SimNode): Promise<void> {
  const { state } = store;
  const cgroup = dnsCgroup(state.cgroup2Mount, state.name, node.name);
  ensureCgroupDir(state.cgroup2Mount, cgroup, (p) => store.record('cgroups', p));
  const addresses = nodeDnsAddresses(node);
  const logFile = dnsLogFile(state.name, node.name);
  const fd = openSync(logFile, 'w');
  let pid: number | undefined;
  try {
    const argv = [process.execPath, ...PROXY_NODE_FLAGS, CLI, 'sim', 'dns-serve', '--zone', dnsZoneFile(state.name), ...addresses.flatMap((a) => ['--listen', a])];
    const child = spawnIn(cgroup, node.netns, argv, { detached: true, stdio: ['ignore', fd, fd] });
    pid = child.pid;
    child.unref();
  } finally {
    closeSync(fd);
  }
  if (pid === undefined) throw new NodemeshError('ERR_NM_SIM_DNS', `could not start the DNS server of node ${node.name}`);
  node.dnsPid = pid;
  node.dnsCgroup = cgroup;
  node.dnsAddresses = addresses;
  state.created.pids.push(pid);
  store.save();
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!boundInNetns(pid, addresses, DNS_PORT)) {
    if (!pidAlive(pid)) throw new NodemeshError('ERR_NM_SIM_DNS', `the DNS server of node ${node.name} exited during start-up: ${logTail(logFile)}`, { hint: `its log: ${logFile}` });
    if (Date.now() > deadline) throw new NodemeshError('ERR_NM_SIM_DNS', `the DNS server of node ${node.name} did not bind ${addresses.join(', ')} port ${DNS_PORT} within ${READY_TIMEOUT_MS} ms`, { hint: `its log: ${logFile}` });
    await new Promise((r) => setTimeout(r, 50));
  }
  log.info({ sim: state.name, node: node.name, pid, addresses }, 'DNS server started');
}

/**
 * A running DNS server on every node (kept when it already serves this zone on these
 * addresses); the nodes' servers start side by side. Servers of removed nodes ended with
 * their node's cgroup: their pids leave the record here.
 */
export async function ensureNodeDns(store: StateStore): Promise<void> {
  const zoneFile = dnsZoneFile(store.state.name);
  store.state.created.pids = store.state.created.pids.filter(pidAlive);
  const starting: Array<Promise<void>> = [];
  for (const node of store.state.nodes) {
    if (liveServer(node, zoneFile)) continue;
    if (node.dnsPid !== undefined) {
      if (pidAlive(node.dnsPid) && cmdline(node.dnsPid)?.includes('dns-serve')) await endProcess(node.dnsPid);
      store.state.created.pids = store.state.created.pids.filter((p) => p !== node.dnsPid);
      delete node.dnsPid;
    }
    starting.push(startServer(store, node));
  }
  await Promise.all(starting);
}
