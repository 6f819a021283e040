import { ipFamily, ipInCIDR } from '../config/ip';
import type { OtherObject } from '../config/objects';
import { MeshSnapshot } from '../config/snapshot';
import { podKey, type MeshMode, type NamespaceInfo, type PodInfo, type ServiceInfo } from '../mesh/model';
import { FABRIC_CIDR, FABRIC_CIDR_V6, MAX_NODES, fabricVeth, nodeAddresses, nodeNetns, podNetns, podVeth, type NodeAddresses } from './names';

/**
 * What a simulation should look like for a set of objects: pure, no system calls.
 *
 * Nodes are the pods' spec.nodeName values plus any `kind: Node` objects. Node indexes
 * are given in sorted name order on the first `up` and kept afterwards (a node added
 * later gets the lowest free index), so that addresses never move under running pods.
 *
 * Pod addresses come from status.podIP(s) as written. An address inside its node's
 * pod CIDR gets that prefix length (/24, /64) and talks to its neighbours on the bridge
 * directly, like the bridge CNI; any other address gets /32 (/128) plus host routes on
 * the nodes, like Calico. Either way every pod's default route is its node's bridge
 * address, and the nodes have no default route: nothing leaves the simulation.
 */

export interface PlanInput {
  namespaces: readonly NamespaceInfo[];
  pods: readonly PodInfo[];
  services: readonly ServiceInfo[];
  others?: readonly OtherObject[];
}

export interface PlannedNode extends NodeAddresses {
  name: string;
  index: number;
  netns: string;
  fabricVeth: string;
}

export interface PlannedPod {
  key: string;
  pod: PodInfo;
  node: string;
  /** Own namespace, or the node's for hostNetwork pods. */
  netns: string;
  /** Node side of the pod's veth; undefined for hostNetwork pods. */
  hostVeth: string | undefined;
  ipv4: string | undefined;
  ipv6: string | undefined;
  /** True when the address lies inside the node's pod CIDR (on-link), else a host route. */
  ipv4OnLink: boolean;
  ipv6OnLink: boolean;
  mode: MeshMode;
}

export interface SkippedObject {
  object: string;
  reason: string;
}

export interface TopologyPlan {
  nodes: PlannedNode[];
  pods: PlannedPod[];
  skipped: SkippedObject[];
}

export interface PlannedRoute {
  family: 4 | 6;
  /** Destination prefix ("10.244.2.0/24", "10.9.9.9/32"). */
  dst: string;
  /** Next hop on the fabric; undefined for routes to the node's own bridge. */
  via: string | undefined;
  dev: string;
}

/** Linux NAME_MAX: a namespace name and a cgroup directory name are file names. */
const NAME_MAX = 255;

export function planTopology(sim: string, input: PlanInput, previousNodes: ReadonlyArray<{ name: string; index: number }> = []): TopologyPlan {
  const skipped: SkippedObject[] = [];
  const nodeNames = new Set<string>();
  for (const pod of input.pods) nodeNames.add(pod.nodeName);
  for (const other of input.others ?? []) if (other.kind === 'Node') nodeNames.add(other.name);

  // Indexes: keep the previous ones, then fill the lowest free in sorted name order.
  const indexOf = new Map<string, number>();
  const used = new Set<number>();
  for (const prev of previousNodes) {
    if (nodeNames.has(prev.name) && !used.has(prev.index)) {
      indexOf.set(prev.name, prev.index);
      used.add(prev.index);
    }
  }
  let next = 1;
  for (const name of [...nodeNames].sort()) {
    if (indexOf.has(name)) continue;
    while (used.has(next)) next++;
    if (next > MAX_NODES) {
      skipped.push({ object: `Node ${name}`, reason: `the simulator holds at most ${MAX_NODES} nodes` });
      continue;
    }
    indexOf.set(name, next);
    used.add(next);
  }
  const nodes: PlannedNode[] = [...indexOf.entries()]
    .sort((a, b) => a[1] - b[1])
    .map(([name, index]) => ({ name, index, netns: nodeNetns(sim, name), fabricVeth: fabricVeth(index), ...nodeAddresses(index) }));
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const gateways = new Set(nodes.flatMap((n) => [n.gateway, n.gatewayV6]));

  const snapshot = MeshSnapshot.from({ namespaces: input.namespaces, pods: input.pods, services: input.services }, 0);
  const owner = new Map<string, string>();
  const pods: PlannedPod[] = [];
  const sorted = [...input.pods].sort((a, b) => (podKey(a) < podKey(b) ? -1 : podKey(a) > podKey(b) ? 1 : 0));
  for (const pod of sorted) {
    const key = podKey(pod);
    const label = `Pod ${key}`;
    const node = byName.get(pod.nodeName);
    if (!node) {
      skipped.push({ object: label, reason: `its node ${pod.nodeName} could not be created` });
      continue;
    }
    const netns = pod.hostNetwork ? node.netns : podNetns(sim, pod.namespace, pod.name);
    if (netns.length > NAME_MAX || `${pod.namespace}_${pod.name}`.length > NAME_MAX) {
      skipped.push({ object: label, reason: `namespace + name are too long for a network namespace name (${NAME_MAX} characters)` });
      continue;
    }
    const ipv4 = pod.ips.find((ip) => ipFamily(ip) === 4);
    const ipv6 = pod.ips.find((ip) => ipFamily(ip) === 6);
    if (!pod.hostNetwork) {
      const clash = pod.ips
        .map((ip): string | undefined => {
          if (owner.has(ip)) return `${ip} is already the address of Pod ${owner.get(ip)}`;
          if (gateways.has(ip)) return `${ip} is a node bridge address (the x.x.x.1 of a node's pod CIDR)`;
          if (ipInCIDR(ip, FABRIC_CIDR) || ipInCIDR(ip, FABRIC_CIDR_V6)) return `${ip} lies in the fabric range ${ipFamily(ip) === 4 ? FABRIC_CIDR : FABRIC_CIDR_V6}`;
          return undefined;
        })
        .find((r) => r !== undefined);
      if (clash !== undefined) {
        skipped.push({ object: label, reason: `status.podIP: ${clash}` });
        continue;
      }
      for (const ip of pod.ips) owner.set(ip, key);
    }
    pods.push({
      key,
      pod,
      node: node.name,
      netns,
      hostVeth: pod.hostNetwork ? undefined : podVeth(pod.namespace, pod.name),
      ipv4,
      ipv6,
      ipv4OnLink: ipv4 !== undefined && ipInCIDR(ipv4, node.podCIDR),
      ipv6OnLink: ipv6 !== undefined && ipInCIDR(ipv6, node.podCIDRv6),
      mode: snapshot.effectiveMode(pod),
    });
  }
  // Two pods' veths may hash alike: astronomically rare, but then the second must wait.
  const veths = new Map<string, string>();
  const unique = pods.filter((p) => {
    if (p.hostVeth === undefined) return true;
    const key = `${p.node}/${p.hostVeth}`;
    const first = veths.get(key);
    if (first === undefined) {
      veths.set(key, p.key);
      return true;
    }
    skipped.push({ object: `Pod ${p.key}`, reason: `its interface name ${p.hostVeth} collides with Pod ${first}'s; rename one` });
    return false;
  });
  return { nodes, pods: unique, skipped };
}

/**
 * The routes node `nodeName` needs (all tagged `proto static` when installed, so that
 * stale ones can be found): other nodes' pod CIDRs via their fabric address, other
 * nodes' off-CIDR pods the same way, and its own off-CIDR pods on its bridge.
 */
export function nodeRoutes(plan: TopologyPlan, nodeName: string, bridge: string, uplink: string): PlannedRoute[] {
  const self = plan.nodes.find((n) => n.name === nodeName);
  if (!self) return [];
  const routes: PlannedRoute[] = [];
  for (const other of plan.nodes) {
    if (other.name === nodeName) continue;
    routes.push({ family: 4, dst: other.podCIDR, via: other.fabricIP, dev: uplink });
    routes.push({ family: 6, dst: other.podCIDRv6, via: other.fabricIPv6, dev: uplink });
  }
  const fabricOf = new Map(plan.nodes.map((n) => [n.name, n]));
  for (const pod of plan.pods) {
    if (pod.pod.hostNetwork) continue;
    const local = pod.node === nodeName;
    const home = fabricOf.get(pod.node)!;
    if (pod.ipv4 !== undefined && !pod.ipv4OnLink) {
      routes.push(local ? { family: 4, dst: `${pod.ipv4}/32`, via: undefined, dev: bridge } : { family: 4, dst: `${pod.ipv4}/32`, via: home.fabricIP, dev: uplink });
    }
    if (pod.ipv6 !== undefined && !pod.ipv6OnLink) {
      routes.push(local ? { family: 6, dst: `${pod.ipv6}/128`, via: undefined, dev: bridge } : { family: 6, dst: `${pod.ipv6}/128`, via: home.fabricIPv6, dev: uplink });
    }
  }
  return routes;
}
