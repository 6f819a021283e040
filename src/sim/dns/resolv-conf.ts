import { CLUSTER_DOMAIN } from '../hosts';

/**
 * /etc/resolv.conf for the simulator's namespaces (`ip netns exec` bind-mounts
 * /etc/netns/<netns>/resolv.conf over it), as kubelet writes a ClusterFirst pod's: the
 * cluster's nameserver, the search list of the pod's namespace, ndots:5. The nameserver
 * is the simulator's DNS server of the pod's node, on the node's bridge address (the
 * pod's gateway, so every pod reaches it: NodeLocal DNSCache's arrangement).
 *
 * `timeout:5 attempts:1`: glibc's own timeout, with one attempt. The server answers every
 * question at once; a lookup that takes 5 s is one that was not answered (the
 * integration test relies on it).
 */

export interface ResolvConfView {
  simName: string;
  /** What the file is for, for its comment: "pod demo/a1", "node node1". */
  owner: string;
  nameservers: string[];
  /** The pod's namespace; undefined for a node (no namespace of its own in the search list). */
  namespace?: string;
}

export const RESOLV_OPTIONS = 'options ndots:5 timeout:5 attempts:1';

export function searchDomains(namespace: string | undefined): string[] {
  return [...(namespace !== undefined ? [`${namespace}.svc.${CLUSTER_DOMAIN}`] : []), `svc.${CLUSTER_DOMAIN}`, CLUSTER_DOMAIN];
}

export function buildResolvConf(view: ResolvConfView): string {
  return [
    `# Written by \`nodemesh sim\` (simulation ${view.simName}) for ${view.owner}: the simulator's DNS server of its node.`,
    '# Removed by `nodemesh sim down`; rewritten by every `nodemesh sim up`.',
    ...view.nameservers.map((ns) => `nameserver ${ns}`),
    `search ${searchDomains(view.namespace).join(' ')}`,
    RESOLV_OPTIONS,
    '',
  ].join('\n');
}
