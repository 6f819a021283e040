import type { ConfigSource } from '../config/config-source';
import { NodemeshError } from '../errors';
import { KubeSource, loadKubeConfig } from '../kube/kube-source';
import { LeaderElection } from '../kube/leader-election';
import { LifecycleFlag } from '../kube/lifecycle-flag';
import { MeshMemberWriter } from '../kube/member-writer';
import { logger } from '../log';
import { KubeStatusWriter } from '../kube/status-writer';

/**
 * What `--kube` adds to the agent and the sidecar. The commands import this module only
 * in that mode: it loads @kubernetes/client-node, which alone costs an agent about 70 MiB
 * of memory that a `--source` agent never uses.
 */

export interface AgentKubeOptions {
  kubeconfig: string | undefined;
  nodeName: string;
  releaseFlag: string | undefined;
  /** `--leader-election-lease NAMESPACE/NAME`: write statuses only while holding that Lease. */
  leaderLease: string | undefined;
  leaseDurationSeconds: number;
  /** This agent's holderIdentity in the Lease. */
  leaderIdentity: string;
}

export interface AgentKubeInputs {
  source: ConfigSource;
  lifecycle: LifecycleFlag | undefined;
  /** Started; the agent's stop stops it (which releases the Lease). */
  leader: LeaderElection | undefined;
  /** Publishes the enrolled pods for the other nodes' agents (MeshMember objects). */
  members: MeshMemberWriter;
}

/**
 * The agent's Kubernetes source (writing statuses as `host`, only while it leads when a
 * lease is given) and, when asked for, the uninstall flag it watches.
 */
export async function agentKubeInputs(options: AgentKubeOptions): Promise<AgentKubeInputs> {
  const kubeConfig = loadKubeConfig(options.kubeconfig);
  let leader: LeaderElection | undefined;
  if (options.leaderLease !== undefined) {
    const [namespace, name] = namespacedName('--leader-election-lease', options.leaderLease);
    leader = new LeaderElection({ kubeConfig, namespace, name, identity: options.leaderIdentity, leaseDurationSeconds: options.leaseDurationSeconds });
  }
  const statusWriter = new KubeStatusWriter({ kubeConfig, host: options.nodeName, ...(leader ? { leader } : {}) });
  const source = new KubeSource({ kubeConfig, nodeName: options.nodeName, statusWriter });
  // Competing starts before the first sync: a sole agent is usually leading by the time
  // its verdicts are ready, and if not, gaining leadership writes them.
  leader?.start();
  const members = new MeshMemberWriter(kubeConfig, options.nodeName, logger('members', { node: options.nodeName }));
  if (!options.releaseFlag) return { source, lifecycle: undefined, leader, members };
  const [ns, name] = options.releaseFlag.split('/');
  try {
    if (!ns || !name) throw new NodemeshError('ERR_NM_USAGE', `--release-on-exit-configmap takes NAMESPACE/NAME, got '${options.releaseFlag}'`);
    const lifecycle = new LifecycleFlag(kubeConfig, ns, name);
    await lifecycle.start();
    return { source, lifecycle, leader, members };
  } catch (err) {
    members.stop();
    await leader?.stop();
    throw err;
  }
}

function namespacedName(flag: string, text: string): [string, string] {
  const [ns, name, extra] = text.split('/');
  if (!ns || !name || extra !== undefined) throw new NodemeshError('ERR_NM_USAGE', `${flag} takes NAMESPACE/NAME, got '${text}'`);
  return [ns, name];
}

/** The sidecar's Kubernetes source: this node's pods when the node is known. */
export function sidecarKubeSource(options: { kubeconfig: string | undefined; nodeName: string | undefined }): ConfigSource {
  return new KubeSource({ kubeConfig: loadKubeConfig(options.kubeconfig), nodeName: options.nodeName || undefined });
}
