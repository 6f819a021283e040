import type { PodInfo } from '../mesh/model';

/** Where a pod lives on this node. */
export interface PodLocation {
  /** Its network namespace file: /run/netns/NAME, or /proc/PID/ns/net of a process in it. */
  netnsPath: string;
}

/**
 * Finds a pod's network namespace on the host. The simulator knows it from its state
 * file; on a cluster it comes from the pod's sandbox (the Kubernetes issue).
 * Rejects with ERR_NM_POD_NOT_FOUND when the pod has no sandbox on this node (yet).
 */
export interface PodLocator {
  locate(pod: PodInfo): Promise<PodLocation>;
}
