import { NodemeshError } from '../errors';
import { netnsPrefix } from './names';
import { ipJson, listNetns } from './netns';
import type { SimState } from './state';

/**
 * The simulator must stay sealed: every interface of its namespaces is a loopback, a
 * bridge or a veth whose peer is in another of its namespaces; the nodes and the fabric
 * have no default route; the fabric has no address; pods route only to their node. So
 * nothing a test or benchmark sends can reach a real network.
 */

interface LinkEntry {
  ifname: string;
  link_netnsid?: number;
  linkinfo?: { info_kind?: string };
}

interface NsidEntry {
  nsid: number;
  name?: string;
}

interface AddrEntry {
  ifname: string;
  addr_info?: Array<{ local: string; family: string }>;
}

interface RouteEntry {
  dst: string;
  gateway?: string;
}

async function nsidNames(netns: string | undefined): Promise<Map<number, string | undefined>> {
  const entries = await ipJson<NsidEntry>(netns, ['netns', 'list-id']);
  return new Map(entries.map((e) => [e.nsid, e.name]));
}

/** Every problem found; empty when the simulation is sealed. */
export async function checkSealed(state: SimState): Promise<string[]> {
  const prefix = netnsPrefix(state.name);
  const problems: string[] = [];
  const existing = (await listNetns()).filter((n) => n.startsWith(prefix));

  for (const netns of existing) {
    const links = await ipJson<LinkEntry>(netns, ['-d', 'link', 'show']);
    const ids = await nsidNames(netns);
    for (const link of links) {
      const kind = link.linkinfo?.info_kind;
      if (link.ifname === 'lo' && kind === undefined) continue;
      if (kind !== 'bridge' && kind !== 'veth') {
        problems.push(`${netns}: interface ${link.ifname} is a ${kind ?? 'physical device'}; only veth and bridge belong in a simulation`);
        continue;
      }
      if (kind === 'veth' && link.link_netnsid !== undefined) {
        const peer = ids.get(link.link_netnsid);
        if (peer === undefined || !peer.startsWith(prefix)) {
          problems.push(`${netns}: veth ${link.ifname} has its peer in ${peer === undefined ? 'a namespace with no name (the host\'s?)' : `namespace ${peer}`}, outside the simulation`);
        }
      }
    }
  }

  // No default route where routing happens (nodes) nor in the switch (fabric).
  const routers = [state.fabric.netns, ...state.nodes.map((n) => n.netns)].filter((n) => existing.includes(n));
  for (const netns of routers) {
    for (const family of ['-4', '-6']) {
      const defaults = await ipJson<RouteEntry>(netns, [family, 'route', 'show', 'default']);
      if (defaults.length > 0) problems.push(`${netns}: has a default route (${family === '-4' ? 'IPv4' : 'IPv6'}); nothing may route out of a simulation`);
    }
  }
  if (existing.includes(state.fabric.netns)) {
    const addrs = await ipJson<AddrEntry>(state.fabric.netns, ['addr', 'show']);
    for (const a of addrs) {
      if (a.ifname === 'lo') continue;
      for (const info of a.addr_info ?? []) problems.push(`${state.fabric.netns}: ${a.ifname} has address ${info.local}; the fabric is a bare switch`);
    }
  }
  for (const pod of state.pods) {
    if (pod.hostNetwork || !existing.includes(pod.netns)) continue;
    const node = state.nodes.find((n) => n.name === pod.node);
    for (const [family, gateway] of [
      ['-4', node?.gateway],
      ['-6', node?.gatewayV6],
    ] as const) {
      const defaults = await ipJson<RouteEntry>(pod.netns, [family, 'route', 'show', 'default']);
      for (const r of defaults) {
        if (r.gateway !== gateway) problems.push(`${pod.netns}: default route via ${r.gateway ?? 'a device'} instead of its node's bridge ${gateway}`);
      }
    }
  }

  // And from the host's side: no host interface is paired with one of the sim's.
  const hostIds = await nsidNames(undefined);
  const hostLinks = await ipJson<LinkEntry>(undefined, ['link', 'show']);
  for (const link of hostLinks) {
    if (link.link_netnsid === undefined) continue;
    const peer = hostIds.get(link.link_netnsid);
    if (peer !== undefined && peer.startsWith(prefix)) problems.push(`host interface ${link.ifname} is linked into ${peer}`);
  }
  return problems;
}

export async function assertSealed(state: SimState): Promise<void> {
  const problems = await checkSealed(state);
  if (problems.length > 0) {
    throw new NodemeshError('ERR_NM_SIM_NOT_SEALED', `simulation ${state.name} is not sealed: ${problems.join('; ')}`, {
      hint: `tear it down with \`nodemesh sim down --name ${state.name}\` and report this`,
      details: { problems },
    });
  }
}
