import { NodemeshError } from '../errors';
import { podKey, type PodInfo } from '../mesh/model';
import { loadSimState } from './state';
import type { PodLocation, PodLocator } from '../agent/pod-locator';

/**
 * Finds pods in the local node simulator: its state file names every pod's namespace.
 * Read afresh on every lookup, so pods added by a later `sim up` are found.
 */
export class SimPodLocator implements PodLocator {
  constructor(private readonly simName: string) {}

  async locate(pod: PodInfo): Promise<PodLocation> {
    const state = loadSimState(this.simName);
    const key = podKey(pod);
    const simPod = state.pods.find((p) => p.key === key);
    if (!simPod) {
      throw new NodemeshError('ERR_NM_POD_NOT_FOUND', `pod ${key} is not in simulation '${this.simName}'`, {
        hint: `run \`nodemesh sim up --name ${this.simName}\` with the same source so the simulator builds it`,
      });
    }
    return { netnsPath: simPod.netnsPath };
  }
}
