import { EventEmitter } from 'node:events';
import type { SecureContext } from 'node:tls';
import { describeError, hasCode, NodemeshError } from '../errors';
import type { Logger } from '../log';
import { certificateFacts, leafOf } from './certificate-facts';
import type { CaClient, SignRequest } from './ca-client';
import { workloadSecureContext } from './mtls-options';
import { workloadKeyAndCsr } from './workload-csr';

/** A workload's current certificate, ready for TLS. Replaced (never mutated) on renewal. */
export interface WorkloadCredential {
  spiffeId: string;
  chainPem: string;
  keyPem: string;
  notBefore: Date;
  notAfter: Date;
  serialNumber: string;
  /** The roots trusted when it was built. */
  trustBundlePem: string;
  /** Cert, key and that trust bundle. */
  context: SecureContext;
  /** Unique per credential object (a renewal or a new bundle makes a new one): pools key sessions by it. */
  generation: number;
}

let generations = 0;

/** What the proxy reads: the current credential of an identity, and when one is replaced. */
export interface CredentialLookup {
  current(spiffeId: string): WorkloadCredential | undefined;
  on(event: 'rotated', listener: (spiffeId: string, next: WorkloadCredential, previous: WorkloadCredential) => void): unknown;
}

/** What `nodemesh status` and the metrics read. */
export interface IdentityStatus {
  spiffeId: string;
  pods: string[];
  notAfter?: string;
  serialNumber?: string;
  renewals: number;
  /** Why the last request or renewal failed, while it is being retried. */
  error?: string;
}

/** Emitted as 'issue' (kind, spiffeId): issued, a first certificate; rotated, a renewal replaced it; failed, a request or renewal failed. */
export type IssueEvent = 'issued' | 'rotated' | 'failed';

interface Entry {
  spiffeId: string;
  pods: Map<string, SignRequest['pod']>;
  credential?: WorkloadCredential;
  pending?: Promise<WorkloadCredential>;
  timer?: NodeJS.Timeout;
  renewals: number;
  error?: string;
}

/** Renew at this fraction of the lifetime (Istio: 50%), so a CA outage of half a lifetime loses nothing. */
const RENEW_AT = 0.5;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30_000;

/**
 * The certificates of the workloads this node serves, one per SPIFFE ID (pods that share
 * a service account share it), requested from the CA for the pods that need them, renewed
 * at half their lifetime and retried with backoff while the CA is down (the current one
 * keeps working until it expires). A renewal replaces the credential: connections made
 * with the old one go on; new ones use the new one ('rotated' event).
 */
export class WorkloadCertificates extends EventEmitter implements CredentialLookup {
  private readonly entries = new Map<string, Entry>();
  private bundle: string;
  private stopped = false;
  private bundleTimer: NodeJS.Timeout | undefined;

  constructor(private readonly ca: CaClient, initialBundlePem: string, private readonly log: Logger) {
    super();
    this.bundle = initialBundlePem;
  }

  get trustBundlePem(): string {
    return this.bundle;
  }

  /** The credential for a pod's identity, requested on first use. Rejects with the CA's reason. */
  async ensure(spiffeId: string, podKey: string, pod: SignRequest['pod']): Promise<WorkloadCredential> {
    let entry = this.entries.get(spiffeId);
    if (!entry) {
      entry = { spiffeId, pods: new Map(), renewals: 0 };
      this.entries.set(spiffeId, entry);
    }
    entry.pods.set(podKey, pod);
    if (entry.credential && entry.credential.notAfter.getTime() > Date.now()) return entry.credential;
    try {
      return await this.request(entry);
    } catch (err) {
      entry.pods.delete(podKey);
      if (entry.pods.size === 0) this.forget(entry);
      // A trust domain the CA does not share is a configuration error: retrying cannot fix it.
      const mismatch = hasCode(err, 'ERR_NM_CA_MISMATCH');
      throw new NodemeshError(mismatch ? 'ERR_NM_CA_MISMATCH' : 'ERR_NM_IDENTITY_UNAVAILABLE', `no certificate for ${spiffeId}: ${describeError(err)}`, {
        hint: mismatch ? 'the pod stays uncaptured; give the agent and the CA the same --trust-domain' : 'the pod stays uncaptured and is retried; check `nodemesh identity` (the CA) and its log',
        cause: err,
      });
    }
  }

  /** The current credential of an identity, if one is held. */
  current(spiffeId: string): WorkloadCredential | undefined {
    const c = this.entries.get(spiffeId)?.credential;
    return c && c.notAfter.getTime() > Date.now() ? c : undefined;
  }

  /** A pod no longer needs its identity; the last pod of an identity drops it. */
  release(podKey: string): void {
    for (const entry of [...this.entries.values()]) {
      if (entry.pods.delete(podKey) && entry.pods.size === 0) this.forget(entry);
    }
  }

  status(): IdentityStatus[] {
    return [...this.entries.values()].map((e) => ({
      spiffeId: e.spiffeId,
      pods: [...e.pods.keys()],
      ...(e.credential ? { notAfter: e.credential.notAfter.toISOString(), serialNumber: e.credential.serialNumber } : {}),
      renewals: e.renewals,
      ...(e.error ? { error: e.error } : {}),
    }));
  }

  /** Every held credential (for the expiry metric). */
  credentials(): WorkloadCredential[] {
    return [...this.entries.values()].flatMap((e) => (e.credential ? [e.credential] : []));
  }

  /** Asks the CA for its trust bundle every `intervalMs` (a staged root reaches this node before it signs anything). */
  refreshBundleEvery(intervalMs: number): void {
    clearInterval(this.bundleTimer);
    this.bundleTimer = setInterval(() => {
      this.ca.trustBundle().then((b) => this.updateBundle(b.trustBundlePem), (err: unknown) => this.log.debug({ err: describeError(err) }, 'trust bundle refresh failed; the current bundle stays'));
    }, intervalMs);
    this.bundleTimer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.bundleTimer);
    for (const e of this.entries.values()) clearTimeout(e.timer);
  }

  /** A newer trust bundle (from the CA): held credentials get contexts that trust it. */
  updateBundle(bundlePem: string): void {
    if (bundlePem === this.bundle || !bundlePem.includes('BEGIN CERTIFICATE')) return;
    this.bundle = bundlePem;
    this.ca.setTrustBundle(bundlePem);
    for (const e of this.entries.values()) {
      if (!e.credential) continue;
      const c = e.credential;
      e.credential = { ...c, trustBundlePem: bundlePem, context: workloadSecureContext(c.chainPem, c.keyPem, bundlePem), generation: ++generations };
      this.emit('rotated', e.spiffeId, e.credential, c);
    }
    this.log.info({ roots: (bundlePem.match(/BEGIN CERTIFICATE/g) ?? []).length }, 'trust bundle updated');
  }

  private request(entry: Entry): Promise<WorkloadCredential> {
    if (entry.pending) return entry.pending;
    const pod = entry.pods.values().next().value as SignRequest['pod'];
    const pending = (async () => {
      const { keyPem, csrPem } = await workloadKeyAndCsr(entry.spiffeId);
      const answer = await this.ca.sign({ csrPem, pod });
      const facts = certificateFacts(leafOf(answer.chainPem));
      if (facts.spiffeId !== entry.spiffeId) {
        throw new NodemeshError('ERR_NM_CA_MISMATCH', `the CA issued ${facts.spiffeId ?? 'no SPIFFE ID'} when ${entry.spiffeId} was asked for`, { hint: 'the CA and the agent disagree on the trust domain; check --trust-domain on both' });
      }
      if (answer.trustBundlePem !== this.bundle) this.updateBundle(answer.trustBundlePem);
      const credential: WorkloadCredential = {
        spiffeId: entry.spiffeId,
        chainPem: answer.chainPem,
        keyPem,
        notBefore: facts.notBefore,
        notAfter: facts.notAfter,
        serialNumber: facts.serialNumber,
        trustBundlePem: this.bundle,
        context: workloadSecureContext(answer.chainPem, keyPem, this.bundle),
        generation: ++generations,
      };
      return credential;
    })();
    entry.pending = pending;
    pending.then(
      (credential) => {
        entry.pending = undefined;
        const previous = entry.credential;
        const first = !previous;
        entry.credential = credential;
        entry.error = undefined;
        if (!first) entry.renewals++;
        this.emit('issue', first ? 'issued' : 'rotated', entry.spiffeId);
        if (previous) this.emit('rotated', entry.spiffeId, credential, previous);
        this.log.info({ spiffeId: entry.spiffeId, notAfter: credential.notAfter.toISOString(), serial: credential.serialNumber }, first ? 'workload certificate issued' : 'workload certificate renewed');
        this.schedule(entry, renewDelay(credential));
      },
      (err: unknown) => {
        entry.pending = undefined;
        entry.error = describeError(err);
        this.emit('issue', 'failed', entry.spiffeId);
        // A renewal that fails is retried while the current certificate lasts; a first
        // request's failure goes to the caller (the pod is retried by reconciliation).
        if (entry.credential) {
          const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(5, entry.renewals + 1));
          this.log.warn({ spiffeId: entry.spiffeId, err: entry.error, retryInMs: delay, notAfter: entry.credential.notAfter.toISOString() }, 'certificate renewal failed; the current certificate stays in use');
          this.schedule(entry, delay);
        }
      },
    );
    return pending;
  }

  private schedule(entry: Entry, delayMs: number): void {
    clearTimeout(entry.timer);
    if (this.stopped || !this.entries.has(entry.spiffeId)) return;
    entry.timer = setTimeout(() => void this.request(entry).catch(() => undefined), delayMs);
    entry.timer.unref();
  }

  private forget(entry: Entry): void {
    clearTimeout(entry.timer);
    this.entries.delete(entry.spiffeId);
  }
}

/** From now, at RENEW_AT of what is left (notBefore is backdated for clock skew, so it is not the issue time). */
function renewDelay(c: WorkloadCredential): number {
  return Math.max(1000, (c.notAfter.getTime() - Date.now()) * RENEW_AT);
}
