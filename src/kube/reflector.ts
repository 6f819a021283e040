import type { Watch } from '@kubernetes/client-node';
import type { K8sObject } from '../config/k8s-yaml';
import { NodemeshError, describeError } from '../errors';
import type { Logger } from '../log';
import { Backoff, type BackoffOptions } from './backoff';
import { collectionPath, httpStatusOf, normalizeObject, objectKey, type KubeResource, type Lister } from './resources';
import { kubeRequest } from './api-deadline';

/**
 * List-then-watch of one resource into an in-memory store: what client-go calls a
 * reflector. client-node's ListWatch (makeInformer) does the happy path, but stops for
 * good on the first list failure or dropped connection (it only reports them), never asks
 * for bookmarks, has no client-side timeout and no resync; this one keeps going:
 *
 * - LIST (paged) with no resourceVersion: a consistent read; the store is replaced by
 *   the result, so an outage loses nothing. Then WATCH from the list's resourceVersion
 *   with allowWatchBookmarks=true and a server-side timeoutSeconds.
 * - Every event and BOOKMARK advances the resourceVersion the next watch starts from.
 * - A watch that ends normally (the server's timeout) starts again at once from there.
 * - 410 Gone (an ERROR event or the HTTP status) means the history is compacted: relist
 *   (at once; after a backoff when it happens again right after a relist).
 * - Any other failure (list error, refused or dropped connection, no data for longer than
 *   the watch timeout) waits an exponential, jittered, capped backoff, then resumes from
 *   the last resourceVersion (or relists if it never had one). The backoff resets only
 *   once a watch proved healthy (an event, or open for healthyMs).
 * - An optional resource (a CRD) answering 404 counts as synced and empty; it is looked
 *   for again every missingRetryMs.
 * - Every resyncMs (with jitter) it relists anyway, to heal anything a bug let slip.
 */

export interface ReflectorOptions {
  resource: KubeResource;
  lister: Lister;
  watch: Pick<Watch, 'watch'>;
  log: Logger;
  fieldSelector?: string;
  backoff?: BackoffOptions;
  /** Items per LIST page (default 500). */
  pageSize?: number;
  /** Server-side watch timeout; each watch picks a random value in [min, 2*min] (default 300 s). */
  watchTimeoutSeconds?: number;
  /** Periodic relist (ms, default 30 min; 0 disables). */
  resyncMs?: number;
  /** How often a missing CRD is looked for (ms, default 30 s). */
  missingRetryMs?: number;
  /** A watch that stays open this long is healthy: the backoff resets (ms, default 5000). */
  healthyMs?: number;
  /** A LIST page or a watch's response headers taking longer than this fail (ms, default 60 s). */
  requestTimeoutMs?: number;
  /** The store changed. */
  onChange: () => void;
  /** The first full sync (or a 404 for an optional resource) happened. */
  onSynced: () => void;
  /** A failure that is being retried. */
  onError: (err: NodemeshError) => void;
}

export interface ReflectorStats {
  lists: number;
  watches: number;
  /** Relists forced by 410 Gone. */
  expired: number;
  /** Healthy watches that broke and were resumed. */
  reconnects: number;
  /** Failed requests (reported to onError). */
  errors: number;
}

type Outcome =
  | { kind: 'closed' }
  | { kind: 'expired' }
  | { kind: 'relist' }
  | { kind: 'missing' }
  | { kind: 'stopped' }
  | { kind: 'error'; err: NodemeshError };

export class Reflector {
  readonly resource: KubeResource;
  /** namespace/name (or name) -> object, as plain JSON with kind and apiVersion. */
  readonly store = new Map<string, K8sObject>();
  /** Moves with every change of the store: what the source built from it before is still good while it stays. */
  storeVersion = 0;
  readonly stats: ReflectorStats = { lists: 0, watches: 0, expired: 0, reconnects: 0, errors: 0 };
  private rv: string | undefined;
  private syncedOnce = false;
  private missingNow = false;
  private stopped = true;
  private forceRelist = false;
  private readonly backoff: Backoff;
  private readonly opts: Required<Pick<ReflectorOptions, 'pageSize' | 'watchTimeoutSeconds' | 'resyncMs' | 'missingRetryMs' | 'healthyMs' | 'requestTimeoutMs'>>;
  private wake: (() => void) | undefined;
  private endWatch: ((outcome: Outcome) => void) | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly options: ReflectorOptions) {
    this.resource = options.resource;
    this.backoff = new Backoff(options.backoff);
    this.opts = {
      pageSize: options.pageSize ?? 500,
      watchTimeoutSeconds: options.watchTimeoutSeconds ?? 300,
      resyncMs: options.resyncMs ?? 30 * 60_000,
      missingRetryMs: options.missingRetryMs ?? 30_000,
      healthyMs: options.healthyMs ?? 5000,
      requestTimeoutMs: options.requestTimeoutMs ?? 60_000,
    };
  }

  /** True once the first LIST completed (or the CRD was found missing). */
  get synced(): boolean {
    return this.syncedOnce;
  }

  /** True while an optional resource's CRD is not installed. */
  get missing(): boolean {
    return this.missingNow;
  }

  /** The resourceVersion the next watch starts from (undefined: the next step is a LIST). */
  get resourceVersion(): string | undefined {
    return this.rv;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.scheduleResync();
    this.running = this.run().catch((err) => {
      // run() handles its errors; reaching here is a bug, but never an unhandled rejection.
      this.options.log.error({ err: describeError(err), resource: this.resource.id }, 'reflector stopped unexpectedly');
    });
  }

  /** Stops listing and watching; resolves when the loop has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.resyncTimer) clearTimeout(this.resyncTimer);
    this.resyncTimer = undefined;
    this.endWatch?.({ kind: 'stopped' });
    this.wake?.();
    await this.running;
  }

  /** Relist now (the periodic resync does this). */
  relist(): void {
    this.forceRelist = true;
    this.endWatch?.({ kind: 'relist' });
    this.wake?.();
  }

  private scheduleResync(): void {
    if (this.opts.resyncMs <= 0 || this.stopped) return;
    const delay = this.opts.resyncMs * (0.9 + Math.random() * 0.2);
    this.resyncTimer = setTimeout(() => {
      this.relist();
      this.scheduleResync();
    }, delay);
    this.resyncTimer.unref();
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = undefined;
        done();
      };
    });
  }

  private async run(): Promise<void> {
    let lastExpiredUnhealthy = false;
    while (!this.stopped) {
      if (this.rv === undefined || this.forceRelist) {
        this.forceRelist = false;
        try {
          await this.list();
        } catch (err) {
          if (this.stopped) return;
          if (this.resource.optional && httpStatusOf(err) === 404) {
            this.becomeMissing();
            await this.sleep(this.opts.missingRetryMs);
            continue;
          }
          this.fail('ERR_NM_KUBE_LIST', 'listing', err);
          await this.sleep(this.backoff.next());
          continue;
        }
      }
      if (this.stopped) return;
      if (this.forceRelist || this.rv === undefined) continue; // a resync asked during the list
      const { outcome, healthy } = await this.watchOnce();
      const expiredBefore = lastExpiredUnhealthy;
      lastExpiredUnhealthy = outcome.kind === 'expired' && !healthy;
      switch (outcome.kind) {
        case 'stopped':
          return;
        case 'relist':
          this.forceRelist = true;
          break;
        case 'closed':
          // The server's timeout, or a stream that ended early: resume from the last
          // resourceVersion, at once after a healthy watch, else after a backoff.
          if (!healthy) await this.sleep(this.backoff.next());
          break;
        case 'expired':
          this.stats.expired += 1;
          this.options.log.info({ resource: this.resource.id, resourceVersion: this.rv }, 'watch expired (410 Gone): relisting');
          this.rv = undefined;
          // Relist at once, unless the watch from the previous relist expired at once too.
          if (!healthy && expiredBefore) await this.sleep(this.backoff.next());
          break;
        case 'missing':
          this.becomeMissing();
          await this.sleep(this.opts.missingRetryMs);
          break;
        case 'error':
          if (healthy) {
            // A watch that worked and then broke (an apiserver restart, a load balancer's
            // idle timeout): routine, resume from where it was.
            this.stats.reconnects += 1;
            this.options.log.info({ resource: this.resource.id, err: describeError(outcome.err), resourceVersion: this.rv }, 'watch connection lost; resuming');
          } else {
            this.stats.errors += 1;
            this.options.onError(outcome.err);
          }
          await this.sleep(this.backoff.next());
          break;
      }
    }
  }

  private fail(code: string, what: string, err: unknown): void {
    this.stats.errors += 1;
    this.options.onError(kubeError(code, this.resource, what, err));
  }

  private becomeMissing(): void {
    this.rv = undefined;
    if (!this.missingNow) {
      this.missingNow = true;
      this.options.log.warn(
        { resource: this.resource.id, group: this.resource.group, retryMs: this.opts.missingRetryMs },
        `${this.resource.kind} (${this.resource.group}) is not installed in the cluster (404): treating it as empty and checking again periodically`,
      );
    }
    if (this.store.size > 0) {
      this.store.clear();
      this.storeVersion++;
      this.options.onChange();
    }
    this.markSynced();
  }

  private markSynced(): void {
    if (this.syncedOnce) return;
    this.syncedOnce = true;
    this.options.onSynced();
  }

  private withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
    return kubeRequest(promise, what, this.opts.requestTimeoutMs);
  }

  /** A full, paged LIST that replaces the store. */
  private async list(): Promise<void> {
    this.stats.lists += 1;
    const items: K8sObject[] = [];
    let token: string | undefined;
    let rv = '';
    do {
      const params = {
        limit: this.opts.pageSize,
        timeoutSeconds: Math.ceil(this.opts.requestTimeoutMs / 1000),
        ...(this.options.fieldSelector === undefined ? {} : { fieldSelector: this.options.fieldSelector }),
        ...(token === undefined ? {} : { continueToken: token }),
      };
      const result = await this.withTimeout(this.options.lister(params), `listing ${this.resource.plural}`);
      if (this.stopped) return;
      items.push(...result.items);
      token = result.continueToken;
      rv = result.resourceVersion;
    } while (token !== undefined);
    let changed = items.length !== this.store.size;
    const next = new Map<string, K8sObject>();
    for (const item of items) {
      const key = objectKey(item);
      const before = this.store.get(key);
      if (!before || before.metadata?.resourceVersion !== item.metadata?.resourceVersion) changed = true;
      next.set(key, item);
    }
    this.store.clear();
    for (const [key, item] of next) this.store.set(key, item);
    this.storeVersion++;
    this.rv = rv === '' ? undefined : rv;
    if (this.missingNow) {
      this.missingNow = false;
      this.options.log.info({ resource: this.resource.id }, `${this.resource.kind} (${this.resource.group}) is installed now`);
    }
    this.options.log.debug({ resource: this.resource.id, objects: items.length, resourceVersion: rv }, 'listed');
    if (changed) this.options.onChange();
    this.markSynced();
    // A list without a resourceVersion cannot be watched from: relist after a backoff.
    if (this.rv === undefined) await this.sleep(this.backoff.next());
  }

  /** One WATCH request, until it ends; says how and whether it was healthy. */
  private watchOnce(): Promise<{ outcome: Outcome; healthy: boolean }> {
    this.stats.watches += 1;
    const r = this.resource;
    const fromRV = this.rv!;
    const min = this.opts.watchTimeoutSeconds;
    const timeoutSeconds = Math.round(min + Math.random() * min);
    // No event (bookmarks included) for this long means a dead connection.
    const idleMs = (timeoutSeconds + 30) * 1000;
    return new Promise((resolve) => {
      let settled = false;
      let healthy = false;
      let controller: AbortController | undefined;
      let idleTimer: NodeJS.Timeout | undefined;
      const healthyTimer = setTimeout(() => markHealthy(), this.opts.healthyMs);
      const connectTimer = setTimeout(
        () => finish({ kind: 'error', err: kubeError('ERR_NM_KUBE_WATCH', r, 'watching', new Error(`no response within ${this.opts.requestTimeoutMs} ms`)) }),
        this.opts.requestTimeoutMs,
      );
      const markHealthy = (): void => {
        if (healthy) return;
        healthy = true;
        this.backoff.reset();
      };
      const touch = (): void => {
        if (idleTimer) clearTimeout(idleTimer);
        idleTimer = setTimeout(
          () => finish({ kind: 'error', err: kubeError('ERR_NM_KUBE_WATCH', r, 'watching', new Error(`no data for ${idleMs} ms (the server should have closed the watch after ${timeoutSeconds} s)`)) }),
          idleMs,
        );
      };
      const finish = (outcome: Outcome): void => {
        if (settled) return;
        settled = true;
        this.endWatch = undefined;
        clearTimeout(healthyTimer);
        clearTimeout(connectTimer);
        if (idleTimer) clearTimeout(idleTimer);
        controller?.abort();
        resolve({ outcome, healthy });
      };
      this.endWatch = finish;

      const onEvent = (type: string, object: unknown): void => {
        if (settled) return;
        touch();
        const obj = (typeof object === 'object' && object !== null ? object : {}) as K8sObject & { code?: unknown };
        if (type === 'ERROR') {
          const code = typeof obj.code === 'number' ? obj.code : undefined;
          if (code === 410) return finish({ kind: 'expired' });
          if (code === 404 && r.optional) return finish({ kind: 'missing' });
          const message = typeof obj.message === 'string' ? obj.message : JSON.stringify(obj);
          return finish({ kind: 'error', err: kubeError('ERR_NM_KUBE_WATCH', r, 'watching', Object.assign(new Error(message), { statusCode: code })) });
        }
        const meta = (obj.metadata ?? {}) as Record<string, unknown>;
        const rv = typeof meta.resourceVersion === 'string' && meta.resourceVersion !== '' ? meta.resourceVersion : undefined;
        switch (type) {
          case 'ADDED':
          case 'MODIFIED': {
            const item = normalizeObject(r, obj);
            this.store.set(objectKey(item), item);
            this.storeVersion++;
            break;
          }
          case 'DELETED':
            this.store.delete(objectKey(obj));
            this.storeVersion++;
            break;
          case 'BOOKMARK':
            break;
          default:
            return; // unknown event type: ignore, keep the resourceVersion
        }
        if (rv !== undefined) this.rv = rv;
        markHealthy();
        if (type !== 'BOOKMARK') this.options.onChange();
      };

      const onDone = (err: unknown): void => {
        if (settled) return;
        if (!err) return finish({ kind: 'closed' });
        const status = httpStatusOf(err);
        if (status === 410) return finish({ kind: 'expired' });
        if (status === 404 && r.optional) return finish({ kind: 'missing' });
        finish({ kind: 'error', err: kubeError('ERR_NM_KUBE_WATCH', r, 'watching', err) });
      };

      const query: Record<string, string | number | boolean> = { resourceVersion: fromRV, allowWatchBookmarks: true, timeoutSeconds };
      if (this.options.fieldSelector !== undefined) query.fieldSelector = this.options.fieldSelector;
      this.options.watch.watch(collectionPath(r), query, onEvent, onDone).then(
        (c) => {
          clearTimeout(connectTimer);
          controller = c;
          if (settled) c.abort();
          else touch();
        },
        (err) => finish({ kind: 'error', err: kubeError('ERR_NM_KUBE_WATCH', r, 'watching', err) }),
      );
    });
  }
}

/** A failure talking to the API server, with what to check next. */
export function kubeError(code: string, r: KubeResource, what: string, err: unknown): NodemeshError {
  const status = httpStatusOf(err);
  let hint: string | undefined;
  if (status === 401) hint = "check the agent's service account token (or the kubeconfig's credentials)";
  else if (status === 403) hint = `check the agent's RBAC: it needs list and watch on ${r.group === '' ? '' : `${r.group}/`}${r.plural}`;
  else if (status === 404) hint = `is the ${r.kind} API (${r.group || 'core'}/${r.version}) served by this cluster?`;
  else if (status === undefined) hint = 'check that the API server is reachable from the node; retrying with backoff';
  let detail = describeError(err).split('\n')[0]!;
  const body = (err as { body?: unknown } | null)?.body;
  if (typeof body === 'string') {
    try {
      const parsed = JSON.parse(body) as { message?: unknown };
      if (typeof parsed.message === 'string') detail = parsed.message;
    } catch {
      // not JSON: keep the first line of the error
    }
  }
  const message = `${what} ${r.plural}${r.group === '' ? '' : `.${r.group}`} failed${status === undefined ? '' : ` (HTTP ${status})`}: ${detail}`;
  return new NodemeshError(code, message, { ...(hint === undefined ? {} : { hint }), cause: err, details: { resource: r.id, status } });
}
