import type { LbEndpoint } from './load-balancer';
import type { OutlierDetectionConfig } from './traffic-policy';

/**
 * Passive health checking for the endpoints of one Service (Envoy's outlier detection,
 * Istio's DestinationRule outlierDetection): consecutive errors eject an endpoint for a
 * while; each new ejection lasts longer (base * times ejected, capped); each interval an
 * endpoint stays healthy takes one off its multiplier. Everything is evaluated lazily
 * against the injected clock: no timers.
 *
 * Error classes follow Envoy's defaults (split_external_local_origin_errors off):
 * - 5xx: any status 500-599, and a connect failure or reset (seen as a 503).
 * - gateway: 502, 503, 504, and a connect failure or reset. Another 5xx (500) ends a
 *   gateway-error run without being a success.
 * - anything else (1xx-4xx, or no status: a TCP connection that worked) is a success and
 *   resets both counters.
 *
 * maxEjectionPercent is a hard ceiling: an ejection happens only when, with it, at most
 * floor(endpoints * maxEjectionPercent / 100) endpoints are out and at least one is in
 * (so with 10 endpoints and 10% one at a time, and one endpoint alone is never ejected).
 * An endpoint refused an ejection stays over its threshold and is ejected at its next
 * error once there is room. The endpoint count is the size of the list last given to
 * filter() or setEndpoints() (else the number of endpoints recorded so far).
 */

export interface Outcome {
  /** The HTTP status; undefined for a TCP connection or a request that got no response. */
  status?: number;
  /** Connect failure, connection reset or refused: no response from the endpoint. */
  connectFailure?: boolean;
}

export interface Ejection {
  key: string;
  /** Clock time (the injected `now`) when it comes back. */
  until: number;
  /** How many times it has been ejected (the multiplier of its current ejection). */
  times: number;
}

export interface OutlierDetectorDeps {
  now: () => number;
  /** Called when an endpoint is ejected (for logs and metrics). */
  onEject?: (ejection: Ejection) => void;
}

interface EndpointState {
  consecutive5xx: number;
  consecutiveGateway: number;
  /** Ejection multiplier; decays by one per healthy interval. */
  times: number;
  /** Ejected until this time; undefined while in service. */
  ejectedUntil: number | undefined;
  /** Start of the current healthy stretch, for the multiplier's decay. */
  healthySince: number;
  lastSeen: number;
}

const GATEWAY_STATUSES = new Set([502, 503, 504]);

export class OutlierDetector {
  private readonly cfg: OutlierDetectionConfig;
  private readonly now: () => number;
  private readonly onEject: ((ejection: Ejection) => void) | undefined;
  private readonly state = new Map<string, EndpointState>();
  private population = 0;
  private nextSweep: number;

  constructor(cfg: OutlierDetectionConfig, deps: OutlierDetectorDeps) {
    this.cfg = { ...cfg };
    this.now = deps.now;
    this.onEject = deps.onEject;
    this.nextSweep = this.now() + cfg.intervalMs;
  }

  get enabled(): boolean {
    return this.cfg.consecutive5xxErrors > 0 || this.cfg.consecutiveGatewayErrors > 0;
  }

  /** Brings one endpoint's state up to `now`: ends an expired ejection, decays the multiplier. */
  private settle(s: EndpointState, now: number): void {
    if (s.ejectedUntil !== undefined) {
      if (now < s.ejectedUntil) return;
      s.healthySince = s.ejectedUntil;
      s.ejectedUntil = undefined;
    }
    if (s.times > 0) {
      const steps = Math.floor((now - s.healthySince) / this.cfg.intervalMs);
      if (steps > 0) {
        s.times = Math.max(0, s.times - steps);
        s.healthySince += steps * this.cfg.intervalMs;
      }
    }
  }

  /** At most once per interval: settle everyone and forget endpoints with nothing to remember. */
  private sweep(now: number): void {
    if (now < this.nextSweep) return;
    this.nextSweep = now + this.cfg.intervalMs;
    const staleMs = this.cfg.maxEjectionTimeMs + this.cfg.intervalMs;
    for (const [key, s] of this.state) {
      this.settle(s, now);
      if (s.ejectedUntil !== undefined || s.times > 0) continue;
      if ((s.consecutive5xx === 0 && s.consecutiveGateway === 0) || now - s.lastSeen > staleMs) this.state.delete(key);
    }
  }

  private ejectedCount(now: number): number {
    let count = 0;
    for (const s of this.state.values()) if (s.ejectedUntil !== undefined && now < s.ejectedUntil) count++;
    return count;
  }

  /** How many endpoints may be out at once. */
  private maxEjected(): number {
    const total = this.population > 0 ? this.population : this.state.size;
    return Math.min(total - 1, Math.floor((total * this.cfg.maxEjectionPercent) / 100));
  }

  record(epKey: string, outcome: Outcome): void {
    const now = this.now();
    this.sweep(now);
    if (!this.enabled) return;
    const status = outcome.status;
    const connectFailure = outcome.connectFailure === true;
    const is5xx = connectFailure || (status !== undefined && status >= 500 && status <= 599);
    let s = this.state.get(epKey);
    if (!is5xx) {
      if (s) {
        s.consecutive5xx = 0;
        s.consecutiveGateway = 0;
        s.lastSeen = now;
      }
      return;
    }
    if (!s) {
      s = { consecutive5xx: 0, consecutiveGateway: 0, times: 0, ejectedUntil: undefined, healthySince: now, lastSeen: now };
      this.state.set(epKey, s);
    }
    this.settle(s, now);
    s.lastSeen = now;
    // Requests that were in flight when it was ejected still report; they do not extend it.
    if (s.ejectedUntil !== undefined) return;
    s.consecutive5xx += 1;
    if (connectFailure || GATEWAY_STATUSES.has(status!)) s.consecutiveGateway += 1;
    else s.consecutiveGateway = 0;
    const over5xx = this.cfg.consecutive5xxErrors > 0 && s.consecutive5xx >= this.cfg.consecutive5xxErrors;
    const overGateway = this.cfg.consecutiveGatewayErrors > 0 && s.consecutiveGateway >= this.cfg.consecutiveGatewayErrors;
    if (!over5xx && !overGateway) return;
    if (this.ejectedCount(now) + 1 > this.maxEjected()) return;
    s.times += 1;
    const duration = Math.min(this.cfg.baseEjectionTimeMs * s.times, Math.max(this.cfg.baseEjectionTimeMs, this.cfg.maxEjectionTimeMs));
    s.ejectedUntil = now + duration;
    s.consecutive5xx = 0;
    s.consecutiveGateway = 0;
    this.onEject?.({ key: epKey, until: s.ejectedUntil, times: s.times });
  }

  isEjected(epKey: string): boolean {
    const s = this.state.get(epKey);
    if (!s || s.ejectedUntil === undefined) return false;
    this.settle(s, this.now());
    return s.ejectedUntil !== undefined;
  }

  /** The endpoint list the balancer should see; also tells the detector how many endpoints there are. */
  setEndpoints(keys: Iterable<string>): void {
    const live = new Set(keys);
    this.population = live.size;
    for (const key of this.state.keys()) if (!live.has(key)) this.state.delete(key);
  }

  /**
   * The endpoints not ejected. Never fewer than ceil(n * (100 - maxEjectionPercent) / 100)
   * nor zero: when endpoints went away and the ejected ones are now too many, those whose
   * ejection ends first are let back in.
   */
  filter<E extends LbEndpoint>(eps: readonly E[]): E[] {
    const now = this.now();
    this.sweep(now);
    this.population = eps.length;
    const kept: E[] = [];
    let ejected: Array<{ ep: E; until: number }> | undefined;
    for (const ep of eps) {
      const s = this.state.get(ep.key);
      if (s && s.ejectedUntil !== undefined) {
        this.settle(s, now);
        if (s.ejectedUntil !== undefined) {
          (ejected ??= []).push({ ep, until: s.ejectedUntil });
          continue;
        }
      }
      kept.push(ep);
    }
    if (!ejected) return kept;
    const minKept = Math.max(1, Math.ceil((eps.length * (100 - this.cfg.maxEjectionPercent)) / 100));
    if (kept.length >= minKept) return kept;
    ejected.sort((a, b) => a.until - b.until);
    const back = new Set<E>(ejected.slice(0, minKept - kept.length).map((e) => e.ep));
    const keptSet = new Set<E>(kept);
    // The input's order, so that the caller sees a stable list.
    return eps.filter((ep) => keptSet.has(ep) || back.has(ep));
  }

  ejections(): Ejection[] {
    const now = this.now();
    const out: Ejection[] = [];
    for (const [key, s] of this.state) {
      this.settle(s, now);
      if (s.ejectedUntil !== undefined) out.push({ key, until: s.ejectedUntil, times: s.times });
    }
    return out.sort((a, b) => a.until - b.until || (a.key < b.key ? -1 : 1));
  }
}
