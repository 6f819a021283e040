import { hash32 } from './random';
import type { LoadBalancerConfig, LoadBalancerType } from './traffic-policy';
import { formatHostPort } from '../../util/host-port';

/**
 * Endpoint selection for one Service. The caller passes the endpoints that may take the
 * request (ready, not ejected by outlier detection); the balancer only chooses. State
 * (round-robin position, active requests, latency estimates, the hash ring) is keyed by
 * the endpoint's `key`, so it survives endpoint lists being rebuilt for every snapshot.
 */

export interface LbEndpoint {
  /** "ip:port" ("[ip6]:port" for IPv6); see endpointKey(). */
  key: string;
}

export interface LbContext {
  /** The value of the ConsistentHash header, when the request has it. */
  hashKey?: string;
}

export interface LoadBalancer<E extends LbEndpoint> {
  readonly type: LoadBalancerType;
  /** One of `endpoints`, or undefined when the list is empty. */
  pick(endpoints: readonly E[], ctx: LbContext): E | undefined;
  /** A request started on ep (LeastRequest and EWMA count active requests). */
  onStart(ep: E): void;
  /** That request ended after latencyMs; ok is false for errors (EWMA only uses latency). */
  onEnd(ep: E, latencyMs: number, ok: boolean): void;
}

export interface LoadBalancerDeps {
  /** [0, 1); Math.random by default. */
  random?: () => number;
  /** Milliseconds; Date.now by default. Only EWMA reads it. */
  now?: () => number;
  /** EWMA: how fast old latencies are forgotten (time constant), 10s by default as in Linkerd and Finagle. */
  ewmaDecayMs?: number;
  /** EWMA: the latency assumed for an endpoint not measured yet, 30ms by default as in Linkerd. */
  ewmaDefaultRttMs?: number;
  /** ConsistentHash: points on the ring per endpoint, 128 by default. */
  ringVirtualNodes?: number;
}

/** The key of an address and port: "10.0.0.1:80", "[fd00::1]:80". */
export function endpointKey(address: string, port: number): string {
  return formatHostPort(address, port);
}

/** The request's hash key for a ConsistentHash balancer, read with `header(name)` (lower-case name). */
export function hashKeyFor(cfg: LoadBalancerConfig | undefined, header: (name: string) => string | string[] | undefined): string | undefined {
  if (cfg?.type !== 'ConsistentHash' || cfg.consistentHash === undefined) return undefined;
  const value = header(cfg.consistentHash.header);
  if (value === undefined) return undefined;
  return Array.isArray(value) ? (value.length === 0 ? undefined : value.join(',')) : value;
}

function randomIndex(random: () => number, n: number): number {
  // Math.min guards against a random() that returns exactly 1.
  return Math.min(n - 1, Math.floor(random() * n));
}

/** Two distinct random indexes (n >= 2). */
function twoIndexes(random: () => number, n: number): [number, number] {
  const a = randomIndex(random, n);
  let b = randomIndex(random, n - 1);
  if (b >= a) b += 1;
  return [a, b];
}

/**
 * Round robin in the order of endpoint keys, starting at a random endpoint (so that the
 * node proxies of a cluster do not all start on the same one). The position is the last
 * key picked, not an index: when endpoints come and go the rotation continues with the
 * next key after the last one, nobody is skipped or picked twice in a row because an
 * index shifted. O(n) per pick, no allocation.
 */
class RoundRobinBalancer<E extends LbEndpoint> implements LoadBalancer<E> {
  readonly type = 'RoundRobin' as const;
  private last: string | undefined;

  constructor(private readonly random: () => number) {}

  pick(endpoints: readonly E[]): E | undefined {
    const n = endpoints.length;
    if (n === 0) return undefined;
    let chosen: E;
    if (this.last === undefined) chosen = endpoints[randomIndex(this.random, n)]!;
    else {
      const last = this.last;
      let next: E | undefined;
      let first = endpoints[0]!;
      for (const ep of endpoints) {
        if (ep.key < first.key) first = ep;
        if (ep.key > last && (next === undefined || ep.key < next.key)) next = ep;
      }
      chosen = next ?? first;
    }
    this.last = chosen.key;
    return chosen;
  }

  onStart(): void {}
  onEnd(): void {}
}

class RandomBalancer<E extends LbEndpoint> implements LoadBalancer<E> {
  readonly type = 'Random' as const;
  constructor(private readonly random: () => number) {}

  pick(endpoints: readonly E[]): E | undefined {
    return endpoints.length === 0 ? undefined : endpoints[randomIndex(this.random, endpoints.length)];
  }

  onStart(): void {}
  onEnd(): void {}
}

/** Per-endpoint state that forgets endpoints no longer offered once nothing is in flight. */
abstract class KeyedState<S extends { pending: number }> {
  protected readonly state = new Map<string, S>();

  protected prune(endpoints: readonly LbEndpoint[]): void {
    if (this.state.size <= 2 * endpoints.length + 64) return;
    const live = new Set(endpoints.map((ep) => ep.key));
    for (const [key, s] of this.state) if (s.pending === 0 && !live.has(key)) this.state.delete(key);
  }
}

/** Power of two random choices on active requests (Envoy's LEAST_REQUEST, choice_count 2). */
class LeastRequestBalancer<E extends LbEndpoint> extends KeyedState<{ pending: number }> implements LoadBalancer<E> {
  readonly type = 'LeastRequest' as const;
  constructor(private readonly random: () => number) {
    super();
  }

  active(key: string): number {
    return this.state.get(key)?.pending ?? 0;
  }

  pick(endpoints: readonly E[]): E | undefined {
    const n = endpoints.length;
    if (n <= 1) return endpoints[0];
    this.prune(endpoints);
    const [i, j] = twoIndexes(this.random, n);
    const a = endpoints[i]!;
    const b = endpoints[j]!;
    return this.active(b.key) < this.active(a.key) ? b : a;
  }

  onStart(ep: E): void {
    const s = this.state.get(ep.key);
    if (s) s.pending += 1;
    else this.state.set(ep.key, { pending: 1 });
  }

  onEnd(ep: E): void {
    const s = this.state.get(ep.key);
    if (!s) return;
    s.pending = Math.max(0, s.pending - 1);
    if (s.pending === 0) this.state.delete(ep.key);
  }
}

interface EwmaState {
  /** Peak-EWMA latency estimate (ms) as of `stamp`. */
  cost: number;
  stamp: number;
  pending: number;
  /** Sum of the start times of the requests in flight (their average age counts as a latency floor). */
  startSum: number;
}

/**
 * Peak-EWMA (Finagle, Linkerd): each endpoint's latency estimate jumps up to any slower
 * response at once and decays towards faster ones with time constant `decay`; between
 * responses it decays towards zero, so an endpoint avoided for being slow is tried again
 * after a while and comes back when it is fast. Load = estimate * (active + 1), chosen by
 * power of two random choices. One addition: the average age of the requests in flight
 * is a floor under the estimate, so an endpoint that stops answering does not look fast
 * because no slow response ever arrives.
 */
class EwmaBalancer<E extends LbEndpoint> extends KeyedState<EwmaState> implements LoadBalancer<E> {
  readonly type = 'EWMA' as const;
  constructor(
    private readonly random: () => number,
    private readonly now: () => number,
    private readonly decayMs: number,
    private readonly defaultRttMs: number,
  ) {
    super();
  }

  private get(key: string, now: number): EwmaState {
    let s = this.state.get(key);
    if (!s) {
      s = { cost: this.defaultRttMs, stamp: now, pending: 0, startSum: 0 };
      this.state.set(key, s);
    }
    return s;
  }

  /** The load used for choosing (exposed for tests and /debug). */
  load(key: string, now = this.now()): number {
    // An endpoint not measured yet starts at the default estimate, which decays like any
    // other from the moment it is first seen, so it is tried soon.
    const s = this.get(key, now);
    const elapsed = Math.max(0, now - s.stamp);
    let cost = s.cost * Math.exp(-elapsed / this.decayMs);
    if (s.pending > 0) cost = Math.max(cost, now - s.startSum / s.pending);
    return cost * (s.pending + 1);
  }

  pick(endpoints: readonly E[]): E | undefined {
    const n = endpoints.length;
    if (n <= 1) return endpoints[0];
    this.prune(endpoints);
    const now = this.now();
    const [i, j] = twoIndexes(this.random, n);
    const a = endpoints[i]!;
    const b = endpoints[j]!;
    return this.load(b.key, now) < this.load(a.key, now) ? b : a;
  }

  onStart(ep: E): void {
    const now = this.now();
    const s = this.get(ep.key, now);
    s.pending += 1;
    s.startSum += now;
  }

  onEnd(ep: E, latencyMs: number): void {
    const now = this.now();
    const s = this.get(ep.key, now);
    if (s.pending > 0) {
      s.pending -= 1;
      s.startSum = s.pending === 0 ? 0 : s.startSum - (now - latencyMs);
    }
    const rtt = Math.max(0, latencyMs);
    if (rtt > s.cost) s.cost = rtt;
    else {
      const decay = Math.exp(-Math.max(0, now - s.stamp) / this.decayMs);
      s.cost = s.cost * decay + rtt * (1 - decay);
    }
    s.stamp = now;
  }
}

/**
 * Ring hash (Envoy's RING_HASH, Ketama-like): every endpoint owns `virtualNodes` points
 * hash("key#i") on a 32-bit ring; a request goes to the owner of the first point at or
 * after hash(hashKey). The points of an endpoint do not depend on the others, so adding
 * or removing one endpoint moves only the keys it gains or loses (about 1/N). Without a
 * hash key the request goes to a random endpoint.
 */
class RingHashBalancer<E extends LbEndpoint> implements LoadBalancer<E> {
  readonly type = 'ConsistentHash' as const;
  private ringKeys = new Set<string>();
  private lastList: readonly E[] | undefined;
  /** key -> endpoint of lastList, built when the same list is used a second time. */
  private byKey: Map<string, E> | undefined;
  private points = new Uint32Array(0);
  /** Owner of each point, as an index into `keys`. */
  private owners = new Uint32Array(0);
  private keys: string[] = [];

  constructor(
    private readonly random: () => number,
    private readonly virtualNodes: number,
  ) {}

  private ensureRing(endpoints: readonly E[]): void {
    if (endpoints === this.lastList) return;
    this.lastList = endpoints;
    this.byKey = undefined;
    if (endpoints.length === this.ringKeys.size && endpoints.every((ep) => this.ringKeys.has(ep.key))) return;
    const keys = [...new Set(endpoints.map((ep) => ep.key))].sort();
    // (point, owner) packed in one double (point * 2^20 + owner < 2^52, exact) and sorted
    // natively: points in order, ties broken by key, the same on every proxy.
    const packed = new Float64Array(keys.length * this.virtualNodes);
    let n = 0;
    keys.forEach((key, owner) => {
      for (let i = 0; i < this.virtualNodes; i++) packed[n++] = hash32(`${key}#${i}`) * 0x100000 + owner;
    });
    packed.sort();
    this.points = new Uint32Array(packed.length);
    this.owners = new Uint32Array(packed.length);
    for (let i = 0; i < packed.length; i++) {
      const owner = packed[i]! % 0x100000;
      this.owners[i] = owner;
      this.points[i] = (packed[i]! - owner) / 0x100000;
    }
    this.keys = keys;
    this.ringKeys = new Set(keys);
  }

  /** The key of the endpoint owning `hashKey` on the current ring. */
  private ownerOf(hashKey: string): string {
    const h = hash32(hashKey);
    const points = this.points;
    let lo = 0;
    let hi = points.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (points[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    return this.keys[this.owners[lo === points.length ? 0 : lo]!]!;
  }

  pick(endpoints: readonly E[], ctx: LbContext): E | undefined {
    const n = endpoints.length;
    if (n === 0) return undefined;
    if (ctx.hashKey === undefined) return endpoints[randomIndex(this.random, n)];
    if (n === 1) return endpoints[0];
    const sameList = endpoints === this.lastList;
    this.ensureRing(endpoints);
    const owner = this.ownerOf(ctx.hashKey);
    if (!sameList) return endpoints.find((ep) => ep.key === owner) ?? endpoints[0];
    this.byKey ??= new Map(endpoints.map((ep) => [ep.key, ep]));
    return this.byKey.get(owner) ?? endpoints[0];
  }

  onStart(): void {}
  onEnd(): void {}
}

export function createLoadBalancer<E extends LbEndpoint>(cfg: LoadBalancerConfig | undefined, deps: LoadBalancerDeps = {}): LoadBalancer<E> {
  const random = deps.random ?? Math.random;
  const now = deps.now ?? Date.now;
  switch (cfg?.type ?? 'RoundRobin') {
    case 'RoundRobin':
      return new RoundRobinBalancer<E>(random);
    case 'Random':
      return new RandomBalancer<E>(random);
    case 'LeastRequest':
      return new LeastRequestBalancer<E>(random);
    case 'EWMA':
      return new EwmaBalancer<E>(random, now, deps.ewmaDecayMs ?? 10_000, deps.ewmaDefaultRttMs ?? 30);
    case 'ConsistentHash':
      return new RingHashBalancer<E>(random, Math.max(1, Math.floor(deps.ringVirtualNodes ?? 128)));
  }
}
