import { ConcurrencyLimiter, ConnectionLimiter } from './circuit-breaker';
import { decideFault, type FaultDecision } from './fault-injection';
import { createLoadBalancer, hashKeyFor, type LbContext, type LbEndpoint, type LoadBalancer, type LoadBalancerDeps } from './load-balancer';
import { OutlierDetector, type Ejection } from './outlier-detector';
import { RateLimiter } from './rate-limiter';
import { DEFAULT_LOAD_BALANCER, type FaultInjectionConfig, type LoadBalancerConfig, type TrafficPolicy } from './traffic-policy';

/**
 * The glue the proxy uses: one long-lived ServicePolicy per Service, holding the state
 * of its balancer, outlier detector, limiters and rate limiter. Snapshots come and go;
 * PolicyRegistry.update() keeps every piece of state whose settings did not change, so a
 * new snapshot neither forgets ejections nor refills rate-limit buckets. A changed
 * section is rebuilt alone (changing fault injection keeps the ejections); a changed
 * connection pool resizes the existing limiter, so requests in flight stay counted.
 */

export interface PolicyDeps {
  /** Milliseconds; Date.now by default. Ejection times in /debug are in this clock. */
  now?: () => number;
  /** [0, 1); Math.random by default. */
  random?: () => number;
  /** Called when an endpoint of a Service is ejected. */
  onEject?: (serviceKey: string, ejection: Ejection) => void;
  /** Tuning for the balancers (EWMA decay, ring size). */
  loadBalancer?: Omit<LoadBalancerDeps, 'random' | 'now'>;
  /** Per-source rate-limit buckets kept per Service at most (default 10,000). */
  maxRateLimitBuckets?: number;
}

interface ResolvedDeps {
  now: () => number;
  random: () => number;
  onEject: PolicyDeps['onEject'];
  loadBalancer: Omit<LoadBalancerDeps, 'random' | 'now'>;
  maxRateLimitBuckets: number | undefined;
}

/** JSON with sorted keys: equal settings give equal text whatever the key order. */
export function stableStringify(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableStringify(v)}`).join(',')}}`;
}

function same(a: unknown, b: unknown): boolean {
  return stableStringify(a) === stableStringify(b);
}

/** Equal for equal policies (settings and metadata), whatever object holds them. */
function fingerprint(policy: TrafficPolicy | undefined): string {
  return policy === undefined ? 'default' : stableStringify(policy);
}

export class ServicePolicy {
  readonly lb: LoadBalancer<LbEndpoint>;
  readonly outliers: OutlierDetector | undefined;
  readonly limiter: ConcurrencyLimiter | undefined;
  readonly connections: ConnectionLimiter | undefined;
  readonly rateLimiter: RateLimiter | undefined;
  readonly faultInjection: FaultInjectionConfig | undefined;
  private readonly random: () => number;

  /** Reuses from `previous` every component whose settings are unchanged. */
  constructor(
    readonly serviceKey: string,
    readonly policy: TrafficPolicy | undefined,
    deps: ResolvedDeps,
    previous?: ServicePolicy,
  ) {
    this.random = deps.random;
    const prev = previous?.policy;
    const lbConfig: LoadBalancerConfig = policy?.loadBalancer ?? DEFAULT_LOAD_BALANCER;
    this.lb =
      previous && same(prev?.loadBalancer ?? DEFAULT_LOAD_BALANCER, lbConfig)
        ? previous.lb
        : createLoadBalancer<LbEndpoint>(lbConfig, { ...deps.loadBalancer, random: deps.random, now: deps.now });

    const od = policy?.outlierDetection;
    if (!od || (od.consecutive5xxErrors === 0 && od.consecutiveGatewayErrors === 0)) this.outliers = undefined;
    else if (previous?.outliers && same(prev?.outlierDetection, od)) this.outliers = previous.outliers;
    else {
      const onEject = deps.onEject;
      this.outliers = new OutlierDetector(od, { now: deps.now, onEject: onEject ? (e) => onEject(serviceKey, e) : undefined });
    }

    const cp = policy?.connectionPool;
    if (!cp) {
      this.limiter = undefined;
      this.connections = undefined;
    } else {
      if (previous?.limiter) {
        previous.limiter.update(cp);
        this.limiter = previous.limiter;
      } else this.limiter = new ConcurrencyLimiter(cp, `Service ${serviceKey}`);
      if (previous?.connections) {
        previous.connections.update(cp.maxConnections);
        this.connections = previous.connections;
      } else this.connections = new ConnectionLimiter(cp.maxConnections);
    }

    const rl = policy?.rateLimit;
    if (!rl) this.rateLimiter = undefined;
    else if (previous?.rateLimiter && same(prev?.rateLimit, rl)) this.rateLimiter = previous.rateLimiter;
    else this.rateLimiter = new RateLimiter(rl, deps.now, { maxBuckets: deps.maxRateLimitBuckets });

    this.faultInjection = policy?.faultInjection;
  }

  /** Drops ejected endpoints (never all, never below the policy's share), then balances. */
  pick<E extends LbEndpoint>(endpoints: readonly E[], ctx: LbContext = {}): E | undefined {
    let usable: readonly E[] = endpoints;
    if (this.outliers) {
      const kept = this.outliers.filter(endpoints);
      // Nothing ejected: the caller's own list, so balancers can keep per-list caches.
      if (kept.length < endpoints.length) usable = kept;
    }
    return this.lb.pick(usable, ctx) as E | undefined;
  }

  /** The ConsistentHash key of a request, read with header(lower-case name). */
  hashKey(header: (name: string) => string | string[] | undefined): string | undefined {
    return hashKeyFor(this.policy?.loadBalancer, header);
  }

  decideFault(): FaultDecision {
    return decideFault(this.faultInjection, this.random);
  }
}

export interface ServicePolicyStatus {
  service: string;
  policy: string | undefined;
  loadBalancer: LoadBalancerConfig['type'];
  ejections: Ejection[];
  active?: number;
  pending?: number;
  connections?: number;
  rateLimitBuckets?: number;
}

export class PolicyRegistry {
  private readonly deps: ResolvedDeps;
  private readonly services = new Map<string, ServicePolicy>();
  private policies = new Map<string, TrafficPolicy>();

  constructor(deps: PolicyDeps = {}) {
    this.deps = {
      now: deps.now ?? Date.now,
      random: deps.random ?? Math.random,
      onEject: deps.onEject,
      loadBalancer: deps.loadBalancer ?? {},
      maxRateLimitBuckets: deps.maxRateLimitBuckets,
    };
  }

  /**
   * The policies of a new snapshot (parseTrafficPolicies().policies). A Service whose
   * policy is unchanged (equal content, even if a new object) keeps its ServicePolicy
   * object; a changed one gets a new object that reuses the unchanged components; a Service whose policy went away falls
   * back to the default. With `liveServices`, state of Services not in it is dropped.
   */
  update(policies: ReadonlyMap<string, TrafficPolicy>, liveServices?: Iterable<string>): void {
    const live = liveServices === undefined ? undefined : new Set(liveServices);
    for (const [service, current] of [...this.services]) {
      if (live && !live.has(service) && !policies.has(service)) {
        this.services.delete(service);
        continue;
      }
      const next = policies.get(service);
      if (fingerprint(current.policy) === fingerprint(next)) continue;
      this.services.set(service, new ServicePolicy(service, next, this.deps, current));
    }
    for (const [service, policy] of policies) {
      if (!this.services.has(service)) this.services.set(service, new ServicePolicy(service, policy, this.deps));
    }
    this.policies = new Map(policies);
  }

  /** The Service's policy, or the default (RoundRobin, nothing else) when it has none. */
  forService(serviceKey: string): ServicePolicy {
    let entry = this.services.get(serviceKey);
    if (!entry) {
      entry = new ServicePolicy(serviceKey, this.policies.get(serviceKey), this.deps);
      this.services.set(serviceKey, entry);
    }
    return entry;
  }

  /** For /debug: every Service with state, sorted by key. */
  status(): ServicePolicyStatus[] {
    return [...this.services.values()]
      .sort((a, b) => (a.serviceKey < b.serviceKey ? -1 : 1))
      .map((sp) => {
        const out: ServicePolicyStatus = { service: sp.serviceKey, policy: sp.policy?.key, loadBalancer: sp.lb.type, ejections: sp.outliers?.ejections() ?? [] };
        if (sp.limiter) {
          out.active = sp.limiter.active;
          out.pending = sp.limiter.pending;
        }
        if (sp.connections) out.connections = sp.connections.active;
        if (sp.rateLimiter) out.rateLimitBuckets = sp.rateLimiter.bucketCount;
        return out;
      });
  }
}
