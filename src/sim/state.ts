import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { NodemeshError, hasCode } from '../errors';
import type { MeshMode, PodInfo } from '../mesh/model';
import type { IptablesBackend } from '../netfilter/iptables';
import { STATE_ROOT, lockFile, stateDir, stateFile, validateSimName } from './names';

/**
 * The simulator's record of a simulation, at /run/nodemesh-sim/<sim>/state.json.
 * Every namespace, cgroup and directory is written here BEFORE it is created, so that
 * `down` can remove what a crashed `up` left; `down` also sweeps by name prefix.
 */

export interface SimNode {
  name: string;
  /** 1-based; decides the node's addresses. */
  index: number;
  netns: string;
  /** /run/netns/<netns>: for setns(), nsenter --net=, Iptables(backend, path). */
  netnsPath: string;
  /** The node's address on the fabric (its "node IP"). */
  fabricIP: string;
  fabricIPv6: string;
  podCIDR: string;
  podCIDRv6: string;
  /** The node bridge's addresses: the pods' default gateway. */
  gateway: string;
  gatewayV6: string;
  bridge: string;
  /** The fabric side of the node's link, in the fabric namespace. */
  fabricVeth: string;
  /** cgroup v2 directory of the node: holds `pods/` and `agent/`. */
  cgroup: string;
  podsCgroup: string;
  /** Where an agent for this node puts itself (write its pid to cgroup.procs). */
  agentCgroup: string;
  /** /etc/netns/<netns>/hosts, bind-mounted over /etc/hosts by `ip netns exec`. */
  hostsFile: string;
  /** cgroup of the node's DNS server (src/sim/dns/node-dns.ts). */
  dnsCgroup?: string;
  /** The node's DNS server: its pid (also in created.pids) and the addresses it answers on (port 53). */
  dnsPid?: number;
  dnsAddresses?: string[];
}

export interface SimPod {
  /** namespace/name */
  key: string;
  namespace: string;
  name: string;
  uid: string;
  node: string;
  /** Canonical addresses, IPv4 first when the pod has one. */
  ips: string[];
  hostNetwork: boolean;
  /** The pod's own namespace; the node's for hostNetwork pods. */
  netns: string;
  netnsPath: string;
  cgroup: string;
  /** The node side of the pod's link; undefined for hostNetwork pods. */
  hostVeth: string | undefined;
  hostsFile: string;
  /** /etc/netns/<netns>/resolv.conf: its node's DNS server, the namespace's search list. */
  resolvConf?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  serviceAccount: string;
  containerPorts: PodInfo['containerPorts'];
  /** The mode the DESIGN.md opt-in rules give this pod. */
  mode: MeshMode;
  /** Sidecar mode: the admin API of the pod's own proxy (/run/nodemesh-sim/<sim>/sidecars/<ns>_<pod>.sock). */
  sidecarAdminSocket?: string;
  /** Sidecar mode: the pid of the pod's proxy process (in the pod's cgroup and namespace). */
  sidecarPid?: number;
}

export interface SimServicePort {
  name?: string;
  port: number;
  protocol: string;
  targetPort: number | string;
  /** "address:port" of the ready endpoints, per cluster IP family. */
  endpoints: string[];
}

export interface SimService {
  key: string;
  namespace: string;
  name: string;
  clusterIPs: string[];
  ports: SimServicePort[];
}

export interface SimCreated {
  /** Network namespace names. */
  netns: string[];
  /** cgroup v2 directories. */
  cgroups: string[];
  /** /etc/netns/<name> directories. */
  etcNetns: string[];
  /** Shared parent directories this sim created (removed when empty). */
  dirs: string[];
  /** Long-running processes `up` started: the sidecar proxies of sidecar-mode pods (src/sim/sidecars.ts), the nodes' DNS servers (src/sim/dns/node-dns.ts). */
  pids: number[];
}

/** The simulation's CA: src/sim/identity.ts. */
export interface SimIdentity {
  pid?: number;
  /** unix socket of the CA. */
  socket: string;
  stateDir: string;
  bundleFile: string;
  tokenDir: string;
  logFile: string;
  /** Workload certificate lifetime the CA issues (a duration, "24h"). */
  workloadLifetime: string;
}

export interface SimState {
  version: 1;
  name: string;
  /** The YAML directory or file the sim was built from (absolute). */
  source: string;
  phase: 'building' | 'ready';
  createdAt: string;
  updatedAt: string;
  stateFile: string;
  cgroup2Mount: string;
  /** <cgroup2>/nodemesh-sim/<sim> */
  cgroupRoot: string;
  iptablesBackend: IptablesBackend;
  fabric: { netns: string; netnsPath: string; bridge: string };
  nodes: SimNode[];
  pods: SimPod[];
  services: SimService[];
  /** Objects of the source that were not applied, and why. */
  rejected: Array<{ file: string; object: string; reason: string }>;
  created: SimCreated;
  /** The simulation's CA (src/sim/identity.ts); absent in states of older versions. */
  identity?: SimIdentity;
}

export function emptyCreated(): SimCreated {
  return { netns: [], cgroups: [], etcNetns: [], dirs: [], pids: [] };
}

/** Reads a sim's state; ERR_NM_SIM_NOT_FOUND when there is none. */
export function loadSimState(name: string): SimState {
  validateSimName(name);
  let text: string;
  try {
    text = readFileSync(stateFile(name), 'utf8');
  } catch (err) {
    if (hasCode(err, 'ENOENT')) {
      throw new NodemeshError('ERR_NM_SIM_NOT_FOUND', `no simulation named "${name}" (no ${stateFile(name)})`, {
        hint: `start one with \`nodemesh sim up --source DIR --name ${name}\``,
      });
    }
    throw err;
  }
  try {
    return JSON.parse(text) as SimState;
  } catch (err) {
    throw new NodemeshError('ERR_NM_SIM_STATE_CORRUPT', `${stateFile(name)} is not valid JSON`, {
      hint: `\`nodemesh sim down --name ${name}\` still removes everything by name prefix`,
      cause: err,
    });
  }
}

/** loadSimState, or undefined when missing or unreadable. */
export function tryLoadSimState(name: string): SimState | undefined {
  try {
    return loadSimState(name);
  } catch {
    return undefined;
  }
}

/** Holds the state of one sim and writes it after every change (atomically: write + rename). */
export class StateStore {
  constructor(readonly state: SimState) {}

  save(): void {
    this.state.updatedAt = new Date().toISOString();
    const file = stateFile(this.state.name);
    const tmp = `${file}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(this.state, null, 2)}\n`);
    renameSync(tmp, file);
  }

  /** Records an item (before creating it) and saves. */
  record(kind: 'netns' | 'cgroups' | 'etcNetns' | 'dirs', value: string): void {
    const list = this.state.created[kind];
    if (!list.includes(value)) {
      list.push(value);
      this.save();
    }
  }

  /** Forgets an item (after removing it) and saves. */
  forget(kind: 'netns' | 'cgroups' | 'etcNetns' | 'dirs', value: string): void {
    const list = this.state.created[kind];
    const at = list.indexOf(value);
    if (at >= 0) {
      list.splice(at, 1);
      this.save();
    }
  }
}

/** Creates the state directory (recording /run/nodemesh-sim when it is new). */
export function ensureStateDir(name: string): { createdRoot: boolean } {
  const createdRoot = !existsSync(STATE_ROOT);
  mkdirSync(stateDir(name), { recursive: true, mode: 0o755 });
  return { createdRoot };
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return hasCode(err, 'EPERM');
  }
}

/**
 * One `up` or `down` per sim at a time. The lock file holds the owner's pid; a lock
 * whose owner is gone (a crashed or killed `up`) is taken over.
 */
export async function withSimLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
  ensureStateDir(name);
  const path = lockFile(name);
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (err) {
      if (!hasCode(err, 'EEXIST')) throw err;
      let owner = NaN;
      try {
        owner = Number(readFileSync(path, 'utf8').trim());
      } catch {
        /* removed meanwhile */
      }
      if (!Number.isInteger(owner) || owner <= 0 || !pidAlive(owner)) {
        try {
          unlinkSync(path);
        } catch {
          /* someone else took it over */
        }
        continue;
      }
      if (attempt > 600) {
        throw new NodemeshError('ERR_NM_SIM_BUSY', `simulation "${name}" is locked by process ${owner}`, {
          hint: `wait for it, or end process ${owner} if it is stuck`,
        });
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    return await fn();
  } finally {
    try {
      if (readFileSync(path, 'utf8').trim() === String(process.pid)) unlinkSync(path);
    } catch {
      /* the state directory is gone (down) */
    }
  }
}

/** Runs `fn` on the simulation's state under its lock, saving what it changes. */
export function withStore<T>(name: string, fn: (store: StateStore) => Promise<T>): Promise<T> {
  return withSimLock(name, () => fn(new StateStore(loadSimState(name))));
}
