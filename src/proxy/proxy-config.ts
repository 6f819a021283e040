import type { MeshSnapshot } from '../config/snapshot';
import type { RejectedObject } from '../config/validation';
import { podKey, type PodInfo } from '../mesh/model';
import { buildConfigSlots } from '../kinds/config-slots';
import { workloadOf, type WorkloadInfo } from '../mesh/workload-identity';
import { PolicyRegistry } from '../policy/client/policy-set';
import type { PeerAuthentications } from '../policy/server/peer-authentication';
import { RetryBudget, RouteTable } from '../routing';
import { logger } from '../log';

/**
 * What the proxy serves requests from: one immutable object per configuration snapshot
 * (routes compiled, policies parsed, workload identities derived), swapped atomically.
 * The slots routes and policies are filled from the registry of object kinds
 * (src/kinds/config-slots.ts), which takes what the source parsed already.
 * A request reads `current` once when it starts and keeps that object to its end, so a
 * configuration change never changes a request half-way.
 *
 * The policy registry and the retry budgets are long-lived across snapshots: ejections,
 * token buckets and budgets must survive a configuration change that does not touch them.
 */
export interface ProxyConfig {
  readonly snapshot: MeshSnapshot;
  readonly routes: RouteTable;
  /** The mTLS mode of a pod's port (PeerAuthentication). */
  readonly peerAuthentication: PeerAuthentications;
  readonly rejected: readonly RejectedObject[];
  readonly warnings: readonly RejectedObject[];
  workload(pod: PodInfo): WorkloadInfo;
}

export class ProxyConfigStore {
  readonly policies = new PolicyRegistry();
  private readonly budgets = new Map<string, RetryBudget>();
  private config: ProxyConfig;
  private readonly log = logger('proxy-config');

  /**
   * `trustDomain`: of the workloads' SPIFFE IDs (default cluster.local), as the CA issues
   * them; `meshRootNamespace`: where a PeerAuthentication without a selector is mesh-wide.
   */
  constructor(snapshot: MeshSnapshot, private readonly options: { trustDomain?: string; meshRootNamespace?: string } = {}) {
    this.config = this.build(snapshot);
  }

  get current(): ProxyConfig {
    return this.config;
  }

  /** Compiles a new snapshot; rejected objects are reported, the rest applies. */
  update(snapshot: MeshSnapshot): ProxyConfig {
    this.config = this.build(snapshot);
    return this.config;
  }

  retryBudget(serviceKey: string): RetryBudget {
    let b = this.budgets.get(serviceKey);
    if (!b) {
      b = new RetryBudget();
      this.budgets.set(serviceKey, b);
    }
    return b;
  }

  private build(snapshot: MeshSnapshot): ProxyConfig {
    const { routes, policies, peerAuthentication, rejected, warnings } = buildConfigSlots(snapshot);
    this.policies.update(policies, snapshot.services.keys());
    for (const r of rejected) this.log.warn({ rejected: r }, 'configuration object rejected');
    const workloads = new Map<string, WorkloadInfo>();
    const { trustDomain } = this.options;
    return Object.freeze({
      snapshot,
      routes,
      peerAuthentication: this.options.meshRootNamespace ? peerAuthentication.withRootNamespace(this.options.meshRootNamespace) : peerAuthentication,
      rejected,
      warnings,
      workload(pod: PodInfo): WorkloadInfo {
        const key = podKey(pod);
        let w = workloads.get(key);
        if (!w) {
          w = workloadOf(pod, trustDomain === undefined ? {} : { trustDomain });
          workloads.set(key, w);
        }
        return w;
      },
    });
  }
}
