import type { MeshSnapshot } from '../config/snapshot';
import type { RejectedObject } from '../config/validation';
import { podKey, type PodInfo } from '../mesh/model';
import { ConfigSlotsBuilder } from '../kinds/config-slots';
import type { OtherObject } from '../config/objects';
import { sameItems } from '../util/same-items';
import { isDeepStrictEqual } from 'node:util';
import { workloadOf, type WorkloadInfo } from '../mesh/workload-identity';
import { PolicyRegistry } from '../policy/client/policy-set';
import type { AuthorizationPolicies } from '../policy/server/authorization/policy-set';
import type { PeerAuthentications } from '../policy/server/peer-authentication';
import { RetryBudget, RouteTable } from '../routing';
import { logger } from '../log';
import { rejection } from '../config/validation';
import { LastGoodPolicies } from '../policy/server/authorization/last-good';
import { NewItems } from '../util/new-items';
import type { RouteStatus } from '../routing';

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
  /**
   * Authorization rules (Istio AuthorizationPolicy, GEP-3779 XAuthorizationPolicy) with
   * this agent's root namespace and trust domain: `evaluate(config.authorization, request)`
   * and `needsL7` (policy/server/authorization/evaluate.ts).
   */
  readonly authorization: AuthorizationPolicies;
  /**
   * Changes when the authorization objects change (not with other snapshots). Pooled
   * upstream connections through the tunnel are keyed by it: the destination judged such
   * a connection once (L4) when it opened, so new requests must not reuse one opened under
   * other policies.
   */
  readonly authorizationGeneration: number;
  readonly rejected: readonly RejectedObject[];
  readonly warnings: readonly RejectedObject[];
  /** Each route's status.parents (Accepted, ResolvedRefs with reasons), for /debug/config. */
  readonly routeStatuses: readonly RouteStatus[];
  workload(pod: PodInfo): WorkloadInfo;
}

const AUTHORIZATION_KINDS = new Set(['AuthorizationPolicy', 'XAuthorizationPolicy']);

/** Warning code: an authorization policy whose new version is rejected is enforced as it last was. */
export const POLICY_KEPT_WARNING = 'WARN_NM_POLICY_KEPT';

export class ProxyConfigStore {
  readonly policies = new PolicyRegistry();
  private readonly budgets = new Map<string, RetryBudget>();
  private config: ProxyConfig;
  private readonly log = logger('proxy-config');
  /** Routes and parsed kinds carried from one snapshot to the next (only what changed is compiled again). */
  private readonly slots = new ConfigSlotsBuilder();
  /** The authorization objects of the last snapshot, and their generation (authorizationGeneration). */
  private authzObjects: readonly OtherObject[] | undefined;
  private authzGeneration = 0;
  /** Rejections and route warnings already logged: each is logged once, when it appears. */
  private readonly newProblems = new NewItems<RejectedObject>((r) => `${r.code} ${r.reason}`);
  private readonly lastGoodAuthz = new LastGoodPolicies();

  /**
   * `trustDomain`: of the workloads' SPIFFE IDs (default cluster.local), as the CA issues
   * them; `meshRootNamespace`: where a PeerAuthentication or AuthorizationPolicy without a
   * selector is mesh-wide.
   */
  constructor(snapshot: MeshSnapshot, private readonly options: { trustDomain?: string; meshRootNamespace?: string } = {}) {
    this.config = this.build(snapshot);
  }

  get current(): ProxyConfig {
    return this.config;
  }

  /**
   * Compiles a new snapshot; rejected objects are reported, the rest applies.
   * `sourceRejected`: what the source rejected already (the Kubernetes source parses some
   * kinds itself), so that an authorization policy it rejected keeps its last valid version.
   */
  update(snapshot: MeshSnapshot, sourceRejected: readonly RejectedObject[] = []): ProxyConfig {
    this.config = this.build(snapshot, sourceRejected);
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

  private build(snapshot: MeshSnapshot, sourceRejected: readonly RejectedObject[] = []): ProxyConfig {
    const slots = this.slots.build(snapshot);
    const { routes, policies, peerAuthentication, rejected, routeStatuses } = slots;
    // A rejected edit of an authorization policy leaves its previous version in force.
    const { policies: authorization, kept } = this.lastGoodAuthz.apply(slots.authorization, [...rejected, ...sourceRejected]);
    const warnings = [
      ...slots.warnings,
      ...kept.map((p) => ({ ...rejection(p.file, `${p.kind} ${p.namespace}/${p.name}`, 'its new version is rejected (see the rejection): the previous version stays in force until it is fixed or deleted'), code: POLICY_KEPT_WARNING })),
    ];
    this.policies.update(policies, snapshot.services.keys());
    for (const r of this.newProblems.next([...rejected, ...warnings])) {
      if (!r.code.startsWith('WARN_')) this.log.warn({ rejected: r }, 'configuration object rejected');
      else this.log.warn({ warning: r }, 'configuration object applies with a problem');
    }
    const workloads = new Map<string, WorkloadInfo>();
    const { trustDomain, meshRootNamespace } = this.options;
    // Same objects (by reference: unchanged ones are shared) or equal ones: same generation.
    const authzObjects = snapshot.others.filter((o) => AUTHORIZATION_KINDS.has(o.kind));
    if (!sameItems(authzObjects, this.authzObjects)) {
      const last = this.authzObjects;
      const equal = last !== undefined && authzObjects.length === last.length && authzObjects.every((o, i) => isDeepStrictEqual(o.object, last[i]!.object));
      this.authzObjects = authzObjects;
      if (!equal) this.authzGeneration++;
    }
    return Object.freeze({
      snapshot,
      routes,
      peerAuthentication: meshRootNamespace ? peerAuthentication.withRootNamespace(meshRootNamespace) : peerAuthentication,
      authorization: authorization.withMeshSettings({ rootNamespace: meshRootNamespace || undefined, trustDomain }),
      authorizationGeneration: this.authzGeneration,
      rejected,
      warnings,
      routeStatuses,
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
