import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease, type V1LeaseSpec } from '@kubernetes/client-node';
import { NodemeshError, describeError } from '../errors';
import { logger } from '../log';
import { sleep, withDeadline } from '../util/deadline';
import { Backoff, type BackoffOptions } from './backoff';
import { kubeRequest } from './api-deadline';
import type { Leadership } from './leadership';
import { httpStatusOf } from './resources';

/**
 * Which agent of the cluster writes statuses and Events: the holder of one
 * coordination.k8s.io/v1 Lease, elected the way client-go's leaderelection does it.
 *
 * Every retryPeriod each agent reads the Lease, then
 * - creates it, holding it, when there is none;
 * - renews it (renewTime now) when it is the holder;
 * - takes it over (leaseTransitions + 1) when nobody holds it (holderIdentity empty, as a
 *   released lease is) or its holder let it expire (renewTime + leaseDurationSeconds in
 *   the past);
 * - else follows.
 * Writes are PUTs carrying the resourceVersion that was read, so of two agents racing for
 * the same Lease one gets 409 and reads it again: there is at most one holder.
 *
 * A leader that could not renew for renewDeadline stops leading, whether requests fail or
 * hang: renewDeadline is shorter than the lease, so it stops before anyone else may take
 * over. stop() releases the Lease (holder emptied, leaseDurationSeconds 1, like client-go's
 * ReleaseOnCancel) so that a successor takes over within one retryPeriod instead of
 * waiting for the lease to expire.
 *
 * Expiry is judged from renewTime against this agent's clock, so the nodes' clocks must
 * agree to well within leaseDurationSeconds (NTP does that on any cluster).
 */

export interface LeaderElectionOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  /** The Lease's name. */
  name: string;
  /** This agent's holderIdentity: unique per agent process (two may overlap on a node during a rollout). */
  identity: string;
  /** How long a holder's renewal keeps others away (s, default 15). */
  leaseDurationSeconds?: number;
  /** A leader that could not renew for this long stops leading (ms, default 10000; less than the lease). */
  renewDeadlineMs?: number;
  /** How often the Lease is read and renewed (ms, default 2000; less than renewDeadlineMs). */
  retryPeriodMs?: number;
  /** The bound of one API request (ms, default half of renewDeadlineMs). */
  requestTimeoutMs?: number;
  /** How long stop() may take, releasing the Lease included (ms, default 2000). */
  stopTimeoutMs?: number;
  /** Retries after a 403 (default 1 s doubling to 60 s): RBAC is fixed by a person, not by the next request. */
  forbiddenBackoff?: BackoffOptions;
  /** The clock of renewTime and expiry (tests). */
  now?: () => Date;
}

export const DEFAULT_LEASE_DURATION_SECONDS = 15;

/** client-go's defaults in proportion to the lease: 15 s lease, 10 s renew deadline, 2 s retry period. */
export function leaderTimings(leaseDurationSeconds: number): { renewDeadlineMs: number; retryPeriodMs: number } {
  const leaseMs = leaseDurationSeconds * 1000;
  return { renewDeadlineMs: Math.round((leaseMs * 2) / 3), retryPeriodMs: Math.round((leaseMs * 2) / 15) };
}

type Verb = 'get' | 'create' | 'update';

export class LeaderElection implements Leadership {
  readonly namespace: string;
  readonly name: string;
  readonly identity: string;
  private readonly api: CoordinationV1Api;
  private readonly leaseDurationSeconds: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly requestTimeoutMs: number;
  private readonly stopTimeoutMs: number;
  private readonly now: () => Date;
  private readonly log = logger('kube', { part: 'leader' });
  private readonly forbiddenBackoff: Backoff;
  private readonly listeners = new Set<(leading: boolean) => void>();
  private readonly wake = new AbortController();
  private leading = false;
  /** The last write of the Lease was this agent's, as holder (so stop() releases it). */
  private holdsLease = false;
  private holderSeen: string | undefined;
  private leadershipTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private stopped = false;
  /** A failure streak was logged (so the next one is not, and the recovery is). */
  private failureLogged = false;

  constructor(options: LeaderElectionOptions) {
    this.namespace = options.namespace;
    this.name = options.name;
    this.identity = options.identity;
    this.api = options.kubeConfig.makeApiClient(CoordinationV1Api);
    this.leaseDurationSeconds = options.leaseDurationSeconds ?? DEFAULT_LEASE_DURATION_SECONDS;
    const timings = leaderTimings(this.leaseDurationSeconds);
    this.renewDeadlineMs = options.renewDeadlineMs ?? timings.renewDeadlineMs;
    this.retryPeriodMs = options.retryPeriodMs ?? timings.retryPeriodMs;
    this.requestTimeoutMs = options.requestTimeoutMs ?? Math.max(1, Math.floor(this.renewDeadlineMs / 2));
    this.stopTimeoutMs = options.stopTimeoutMs ?? 2000;
    this.forbiddenBackoff = new Backoff({ initialMs: 1000, maxMs: 60_000, ...options.forbiddenBackoff });
    this.now = options.now ?? (() => new Date());
    if (this.identity === '') throw new NodemeshError('ERR_NM_LEADER_OPTIONS', 'leader election needs a non-empty identity');
    if (!Number.isInteger(this.leaseDurationSeconds) || this.leaseDurationSeconds < 1) {
      throw new NodemeshError('ERR_NM_LEADER_OPTIONS', `the lease duration must be a whole number of seconds, at least 1 (got ${this.leaseDurationSeconds})`);
    }
    // Without these orderings two agents could lead at once: a leader must give up before
    // its last renewal expires, and must get to retry within its renew deadline.
    if (!(this.renewDeadlineMs < this.leaseDurationSeconds * 1000)) {
      throw new NodemeshError('ERR_NM_LEADER_OPTIONS', `the renew deadline (${this.renewDeadlineMs} ms) must be shorter than the lease (${this.leaseDurationSeconds} s)`);
    }
    if (!(this.retryPeriodMs > 0 && this.retryPeriodMs < this.renewDeadlineMs)) {
      throw new NodemeshError('ERR_NM_LEADER_OPTIONS', `the retry period (${this.retryPeriodMs} ms) must be positive and shorter than the renew deadline (${this.renewDeadlineMs} ms)`);
    }
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** The holder as last read (undefined: nobody, or not read yet). */
  get holder(): string | undefined {
    return this.holderSeen;
  }

  onChange(listener: (leading: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Starts competing for the Lease (in the background; isLeader and onChange tell the outcome). */
  start(): void {
    if (this.running || this.stopped) return;
    this.log.info({ lease: `${this.namespace}/${this.name}`, identity: this.identity, leaseDurationSeconds: this.leaseDurationSeconds }, 'competing for the status-writer lease');
    this.running = this.loop();
  }

  /**
   * Stops competing; a leader stops leading at once and releases the Lease so a successor
   * takes over without waiting for it to expire. Bounded by stopTimeoutMs; never rejects.
   */
  stop(): Promise<void> {
    this.stopping ??= this.stopNow();
    return this.stopping;
  }

  private async stopNow(): Promise<void> {
    this.stopped = true;
    this.wake.abort();
    this.setLeading(false, 'stopping');
    const started = Date.now();
    const release = async (): Promise<void> => {
      // A request in flight may still make this agent the holder: let it land first.
      await this.running;
      if (this.holdsLease) await this.release();
    };
    try {
      await withDeadline(release(), this.stopTimeoutMs, `releasing the lease ${this.namespace}/${this.name}`);
    } catch (err) {
      this.log.warn({ err: describeError(err), ms: Date.now() - started }, 'could not release the lease; the next leader takes over when it expires');
    }
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const attemptStarted = performance.now();
      let delayMs = this.retryPeriodMs;
      try {
        const holding = await this.tryAcquireOrRenew();
        this.recovered();
        if (holding) this.renewed(attemptStarted);
        else this.setLeading(false, `the lease is held by ${this.holderSeen ?? 'another agent'}`);
      } catch (err) {
        if (this.stopped) break;
        delayMs = this.failed(err);
      }
      await sleep(delayMs, this.wake.signal);
    }
  }

  /**
   * One round: read the Lease, then create, renew or take it over when that is this
   * agent's to do. True when it holds the Lease afterwards.
   */
  private async tryAcquireOrRenew(): Promise<boolean> {
    // A 409 means another agent wrote the Lease since it was read: read it again, once.
    for (let round = 0; round < 2; round++) {
      const lease = await this.read();
      const now = this.now();
      try {
        if (!lease) {
          await this.call('create', () => this.api.createNamespacedLease({ namespace: this.namespace, body: this.created(now) }));
          this.held(undefined);
          return true;
        }
        const spec = lease.spec ?? {};
        const holder = spec.holderIdentity ?? '';
        this.holderSeen = holder === '' ? undefined : holder;
        if (holder !== this.identity && holder !== '' && !expired(spec, now)) {
          this.holdsLease = false;
          return false;
        }
        await this.call('update', () => this.api.replaceNamespacedLease({ namespace: this.namespace, name: this.name, body: this.claimed(lease, now) }));
        this.held(holder === this.identity ? undefined : holder);
        return true;
      } catch (err) {
        if (httpStatusOf(err) === 409 && round === 0 && !this.stopped) continue;
        throw err;
      }
    }
    this.holderSeen = undefined;
    this.holdsLease = false;
    return false; // two conflicts in a row: others are writing it; follow until the next round
  }

  private async read(): Promise<V1Lease | undefined> {
    try {
      return await this.call('get', () => this.api.readNamespacedLease({ namespace: this.namespace, name: this.name }));
    } catch (err) {
      if (httpStatusOf(err) === 404) return undefined;
      throw err;
    }
  }

  /** The write as holder succeeded; `previous` is the holder it took the Lease from. */
  private held(previous: string | undefined): void {
    this.holdsLease = true;
    this.holderSeen = this.identity;
    if (previous !== undefined && previous !== '') this.log.info({ previous }, 'took over the expired lease');
  }

  private created(now: Date): V1Lease {
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: this.name, namespace: this.namespace },
      spec: { holderIdentity: this.identity, leaseDurationSeconds: this.leaseDurationSeconds, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 },
    };
  }

  /** The Lease renewed by its holder, or taken over (a new acquireTime, one more transition). */
  private claimed(lease: V1Lease, now: Date): V1Lease {
    const spec = lease.spec ?? {};
    const renewing = spec.holderIdentity === this.identity;
    return {
      ...lease,
      // The resourceVersion read makes the PUT conditional: a concurrent write gets 409.
      metadata: { ...lease.metadata, name: this.name, namespace: this.namespace },
      spec: {
        ...spec,
        holderIdentity: this.identity,
        leaseDurationSeconds: this.leaseDurationSeconds,
        acquireTime: renewing && spec.acquireTime !== undefined ? spec.acquireTime : microTime(now),
        renewTime: microTime(now),
        leaseTransitions: renewing ? spec.leaseTransitions ?? 0 : (spec.leaseTransitions ?? 0) + 1,
      },
    };
  }

  /** Empties the holder and shortens the lease to 1 s, if this agent still holds it. */
  private async release(): Promise<void> {
    const lease = await this.read();
    if (!lease || lease.spec?.holderIdentity !== this.identity) return;
    const now = this.now();
    const body: V1Lease = {
      ...lease,
      spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(now) },
    };
    await this.call('update', () => this.api.replaceNamespacedLease({ namespace: this.namespace, name: this.name, body }));
    this.holdsLease = false;
    this.holderSeen = undefined;
    this.log.info({ lease: `${this.namespace}/${this.name}` }, 'released the lease');
  }

  /** Leading after a renewal that started at `attemptStarted`, for renewDeadline from then. */
  private renewed(attemptStarted: number): void {
    if (this.stopped) return;
    if (this.leadershipTimer) clearTimeout(this.leadershipTimer);
    // Measured from when the renewal was sent (its renewTime), not from the answer: a slow
    // answer must not stretch leadership toward the moment others may take over.
    const leftMs = this.renewDeadlineMs - (performance.now() - attemptStarted);
    this.leadershipTimer = setTimeout(() => this.setLeading(false, `the lease could not be renewed for ${this.renewDeadlineMs} ms`), Math.max(0, leftMs));
    this.leadershipTimer.unref();
    this.setLeading(true, 'holding the lease');
  }

  private setLeading(leading: boolean, why: string): void {
    if (!leading && this.leadershipTimer) {
      clearTimeout(this.leadershipTimer);
      this.leadershipTimer = undefined;
    }
    if (leading === this.leading) return;
    this.leading = leading;
    const fields = { lease: `${this.namespace}/${this.name}`, identity: this.identity, why };
    if (leading) this.log.info(fields, 'became the leader: this agent writes statuses and Events');
    else this.log.info(fields, 'stopped leading: this agent writes no statuses or Events');
    for (const listener of [...this.listeners]) {
      try {
        listener(leading);
      } catch (err) {
        this.log.error({ err: describeError(err) }, 'a leadership listener threw');
      }
    }
  }

  /** After a failed round: logs the first failure of a streak, says how long to wait. */
  private failed(err: unknown): number {
    const forbidden = err instanceof NodemeshError && err.code === 'ERR_NM_KUBE_FORBIDDEN';
    if (!this.failureLogged) {
      this.failureLogged = true;
      // client-node's errors carry the response headers and body after the first line.
      const fields = { err: describeError(err).split('\n')[0], status: httpStatusOf(err) ?? (forbidden ? 403 : undefined), lease: `${this.namespace}/${this.name}`, leading: this.leading };
      if (forbidden) this.log.error(fields, 'leader election is not allowed to use its lease; retrying with backoff');
      else this.log.warn(fields, 'reading or renewing the lease failed; retrying');
    } else {
      this.log.debug({ err: describeError(err) }, 'leader election round failed again');
    }
    return forbidden ? this.forbiddenBackoff.next() : this.retryPeriodMs;
  }

  private recovered(): void {
    this.forbiddenBackoff.reset();
    if (!this.failureLogged) return;
    this.failureLogged = false;
    this.log.info({ lease: `${this.namespace}/${this.name}` }, 'the lease can be read and written again');
  }

  /** One request with a deadline; a 403 becomes ERR_NM_KUBE_FORBIDDEN naming the permission. */
  private async call<T>(verb: Verb, request: () => Promise<T>): Promise<T> {
    try {
      return await kubeRequest(request(), `${verb} lease ${this.namespace}/${this.name}`, this.requestTimeoutMs);
    } catch (err) {
      if (httpStatusOf(err) !== 403) throw err;
      throw forbiddenError(verb, this.namespace, this.name, err);
    }
  }
}

/** A 403 on the Lease, with the RBAC rule that is missing. */
export function forbiddenError(verb: Verb, namespace: string, name: string, cause: unknown): NodemeshError {
  // create cannot be limited by resourceNames (the name is not known before the object
  // exists), get and update are limited to this Lease.
  const rule = verb === 'create' ? `create on coordination.k8s.io leases` : `${verb} on coordination.k8s.io leases (resourceNames: [${name}])`;
  return new NodemeshError('ERR_NM_KUBE_FORBIDDEN', `${verb} of Lease ${namespace}/${name} was forbidden (HTTP 403)`, {
    hint: `check the agent's RBAC: it needs ${rule} in namespace ${namespace} (the Helm chart's Role ${name})`,
    cause,
    details: { status: 403, verb, resource: 'leases', namespace, name },
  });
}

/** metav1.MicroTime: client-node's V1MicroTime serialises with six fractional digits, as the API server expects. */
function microTime(date: Date): V1MicroTime {
  return new V1MicroTime(date.getTime());
}

/** A Lease whose holder did not renew it within leaseDurationSeconds. */
function expired(spec: V1LeaseSpec, now: Date): boolean {
  const renewed = timeOf(spec.renewTime) ?? timeOf(spec.acquireTime);
  if (renewed === undefined) return true;
  return renewed + (spec.leaseDurationSeconds ?? 0) * 1000 < now.getTime();
}

/** client-node reads MicroTime fields back as strings (it has no deserialiser for them), whatever the type says. */
function timeOf(value: unknown): number | undefined {
  if (value instanceof Date) return value.getTime();
  if (typeof value !== 'string') return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}
