import { createHash } from 'node:crypto';
import { NodemeshError } from '../errors';

/**
 * Every name and address the simulator uses, in one place (the table in
 * src/sim/README.md). Network namespace names may be long; interface names may not
 * (IFNAMSIZ: 15 characters), so interfaces are named by node index or by a hash.
 */

export const DEFAULT_SIM_NAME = 'nm';
/** Lower-case letters and digits only: no '-', so that one sim's prefix never matches another's. */
export const SIM_NAME_PATTERN = /^[a-z0-9]{1,12}$/;

export const STATE_ROOT = '/run/nodemesh-sim';
export const NETNS_DIR = '/run/netns';
export const ETC_NETNS_DIR = '/etc/netns';
/** Directory under the cgroup2 mount that holds every simulation. */
export const CGROUP_DIR = 'nodemesh-sim';

/** Interface names inside the simulator's namespaces. */
export const FABRIC_BRIDGE = 'nmfab0';
export const NODE_BRIDGE = 'nmbr0';
/** A node's link to the fabric, and a pod's link to its node, inside node or pod. */
export const UPLINK = 'eth0';

/** Address plan. Node N (1-based, 1..254) owns these. */
export const MAX_NODES = 254;
export const FABRIC_CIDR = '10.255.0.0/24';
export const FABRIC_CIDR_V6 = 'fd00:255::/64';

export function validateSimName(name: string): string {
  if (!SIM_NAME_PATTERN.test(name)) {
    throw new NodemeshError('ERR_NM_SIM_NAME', `"${name}" is not a valid simulation name`, {
      hint: 'use 1-12 lower-case letters and digits (no "-": a sim owns every namespace starting with nmsim-<name>-)',
    });
  }
  return name;
}

/** Every network namespace of the sim starts with this. */
export function netnsPrefix(sim: string): string {
  return `nmsim-${sim}-`;
}

export function fabricNetns(sim: string): string {
  return `${netnsPrefix(sim)}fabric`;
}

export function nodeNetns(sim: string, node: string): string {
  return `${netnsPrefix(sim)}node-${node}`;
}

/** Namespace and pod name joined by '_', which Kubernetes names never contain. */
export function podNetns(sim: string, namespace: string, pod: string): string {
  return `${netnsPrefix(sim)}pod-${namespace}_${pod}`;
}

export function netnsPath(netns: string): string {
  return `${NETNS_DIR}/${netns}`;
}

export function etcNetnsDir(netns: string): string {
  return `${ETC_NETNS_DIR}/${netns}`;
}

/** The fabric side of node N's link (in the fabric namespace). */
export function fabricVeth(index: number): string {
  return `nmn${index}`;
}

/** The node side of a pod's link (in the node namespace): "nmv" + 10 hex digits. */
export function podVeth(namespace: string, pod: string): string {
  return `nmv${createHash('sha256').update(`${namespace}/${pod}`).digest('hex').slice(0, 10)}`;
}

export function stateDir(sim: string): string {
  return `${STATE_ROOT}/${sim}`;
}

export function stateFile(sim: string): string {
  return `${stateDir(sim)}/state.json`;
}

export function lockFile(sim: string): string {
  return `${stateDir(sim)}/lock`;
}

export function simCgroupRoot(cgroup2Mount: string, sim: string): string {
  return `${cgroup2Mount}/${CGROUP_DIR}/${sim}`;
}

export function nodeCgroup(cgroup2Mount: string, sim: string, node: string): string {
  return `${simCgroupRoot(cgroup2Mount, sim)}/${node}`;
}

export function agentCgroup(cgroup2Mount: string, sim: string, node: string): string {
  return `${nodeCgroup(cgroup2Mount, sim, node)}/agent`;
}

/** Where the node's DNS server runs (src/sim/dns/node-dns.ts): ended with the node. */
export function dnsCgroup(cgroup2Mount: string, sim: string, node: string): string {
  return `${nodeCgroup(cgroup2Mount, sim, node)}/dns`;
}

export function podsCgroup(cgroup2Mount: string, sim: string, node: string): string {
  return `${nodeCgroup(cgroup2Mount, sim, node)}/pods`;
}

/**
 * A pod's cgroup. Like kubelet's (`…/pod<uid>` with the cgroupfs driver,
 * `…-pod<uid_with_underscores>.slice` with systemd), the name carries the pod's UID, which
 * is how the agent's /proc pod locator finds a pod's processes on a real node and here.
 */
export function podCgroup(cgroup2Mount: string, sim: string, node: string, namespace: string, pod: string, uid: string): string {
  return `${podsCgroup(cgroup2Mount, sim, node)}/${namespace}_${pod}-pod${uid}`;
}

export interface NodeAddresses {
  fabricIP: string;
  fabricIPv6: string;
  podCIDR: string;
  podCIDRv6: string;
  gateway: string;
  gatewayV6: string;
}

/** Node N: 10.255.0.N on the fabric, pods in 10.244.N.0/24, bridge 10.244.N.1 (and IPv6 likewise). */
export function nodeAddresses(index: number): NodeAddresses {
  if (!Number.isInteger(index) || index < 1 || index > MAX_NODES) throw new RangeError(`node index ${index} outside 1..${MAX_NODES}`);
  // The decimal index written as an IPv6 group, so that node 10 is 10.244.10.0/24 and
  // fd00:244:10::/64 alike (the group reads 10 even though it is 0x10).
  const hex = String(index);
  return {
    fabricIP: `10.255.0.${index}`,
    fabricIPv6: `fd00:255::${hex}`,
    podCIDR: `10.244.${index}.0/24`,
    podCIDRv6: `fd00:244:${hex}::/64`,
    gateway: `10.244.${index}.1`,
    gatewayV6: `fd00:244:${hex}::1`,
  };
}

/** Node N's bridge MAC: locally administered, fixed (02:6e:6d:00:HH:LL). */
export function bridgeMac(index: number): string {
  const hex = (n: number): string => n.toString(16).padStart(2, '0');
  return `02:6e:6d:00:${hex(index >> 8)}:${hex(index & 0xff)}`;
}
