import { selectorMatches } from '../config/endpoints';
import type { ServiceInfo } from '../mesh/model';

/**
 * /etc/hosts for the simulator's namespaces: the names cluster DNS would answer.
 * `ip netns exec NS` bind-mounts /etc/netns/NS/hosts over /etc/hosts, so programs in a
 * pod resolve `b.demo.svc.cluster.local`, `b.demo`, and `b` (from pods of namespace
 * demo) without a DNS server. Cluster DNS search domains do not apply to /etc/hosts,
 * which is why the short forms are listed explicitly.
 */

export const CLUSTER_DOMAIN = 'cluster.local';

export interface HostsPod {
  namespace: string;
  name: string;
  ips: string[];
  labels: Record<string, string>;
  hostNetwork: boolean;
  ready?: boolean;
}

export interface HostsNode {
  name: string;
  fabricIP: string;
  fabricIPv6: string;
}

export interface HostsView {
  /** The pod the file is for; undefined for a node's file. */
  self?: { namespace: string; name: string; ips: string[] };
  /** The node the file is for, when it is a node's. */
  node?: string;
  simName: string;
}

export function buildHostsFile(view: HostsView, services: readonly ServiceInfo[], pods: readonly HostsPod[], nodes: readonly HostsNode[]): string {
  const lines: string[] = [
    `# Written by \`nodemesh sim\` (simulation ${view.simName}) for ${view.self ? `pod ${view.self.namespace}/${view.self.name}` : `node ${view.node ?? '?'}`}.`,
    '# Removed by `nodemesh sim down`; rewritten by every `nodemesh sim up`.',
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
  ];
  if (view.self) for (const ip of view.self.ips) lines.push(`${ip}\t${view.self.name}`);
  if (view.node) {
    const me = nodes.find((n) => n.name === view.node);
    if (me) lines.push(`${me.fabricIP}\t${me.name}`, `${me.fabricIPv6}\t${me.name}`);
  }
  const ownNamespace = view.self?.namespace;
  const serviceNames = (svc: ServiceInfo): string => {
    const names = [`${svc.name}.${svc.namespace}.svc.${CLUSTER_DOMAIN}`, `${svc.name}.${svc.namespace}`, `${svc.name}.${svc.namespace}.svc`];
    if (svc.namespace === ownNamespace) names.push(svc.name);
    return names.join(' ');
  };
  lines.push('# Services');
  for (const svc of [...services].sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`))) {
    if (svc.clusterIPs.length > 0) {
      for (const ip of svc.clusterIPs) lines.push(`${ip}\t${serviceNames(svc)}`);
    } else if (svc.selector !== undefined) {
      // Headless: the name resolves to the ready pods behind it.
      for (const pod of pods) {
        if (pod.namespace !== svc.namespace || pod.hostNetwork || pod.ready === false || !selectorMatches(svc.selector, pod.labels)) continue;
        for (const ip of pod.ips) lines.push(`${ip}\t${serviceNames(svc)}`);
      }
    }
  }
  lines.push('# Pods');
  for (const pod of pods) {
    if (pod.hostNetwork) continue;
    const names = [`${pod.name}.${pod.namespace}.pod.${CLUSTER_DOMAIN}`, `${pod.name}.${pod.namespace}`];
    if (pod.namespace === ownNamespace) names.push(pod.name);
    for (const ip of pod.ips) lines.push(`${ip}\t${names.join(' ')}`);
  }
  lines.push('# Nodes');
  for (const node of nodes) {
    lines.push(`${node.fabricIP}\t${node.name}`);
    lines.push(`${node.fabricIPv6}\t${node.name}`);
  }
  return `${lines.join('\n')}\n`;
}
