import type { ConfigSource } from '../config/config-source';
import { NodemeshError } from '../errors';
import { KubeSource, loadKubeConfig } from '../kube/kube-source';
import { LifecycleFlag } from '../kube/lifecycle-flag';
import { KubeStatusWriter } from '../kube/status-writer';

/**
 * What `--kube` adds to the agent and the sidecar. The commands import this module only
 * in that mode: it loads @kubernetes/client-node, which alone costs an agent about 70 MiB
 * of memory that a `--source` agent never uses.
 */

/** The agent's Kubernetes source (writing statuses as `host`) and, when asked for, the uninstall flag it watches. */
export async function agentKubeInputs(options: { kubeconfig: string | undefined; nodeName: string; releaseFlag: string | undefined }): Promise<{ source: ConfigSource; lifecycle: LifecycleFlag | undefined }> {
  const kubeConfig = loadKubeConfig(options.kubeconfig);
  const source = new KubeSource({ kubeConfig, nodeName: options.nodeName, statusWriter: new KubeStatusWriter({ kubeConfig, host: options.nodeName }) });
  if (!options.releaseFlag) return { source, lifecycle: undefined };
  const [ns, name] = options.releaseFlag.split('/');
  if (!ns || !name) throw new NodemeshError('ERR_NM_USAGE', `--release-on-exit-configmap takes NAMESPACE/NAME, got '${options.releaseFlag}'`);
  const lifecycle = new LifecycleFlag(kubeConfig, ns, name);
  await lifecycle.start();
  return { source, lifecycle };
}

/** The sidecar's Kubernetes source: this node's pods when the node is known. */
export function sidecarKubeSource(options: { kubeconfig: string | undefined; nodeName: string | undefined }): ConfigSource {
  return new KubeSource({ kubeConfig: loadKubeConfig(options.kubeconfig), nodeName: options.nodeName || undefined });
}
