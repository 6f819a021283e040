import { createHash } from 'node:crypto';
import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, type CoreV1Event, type KubeConfig } from '@kubernetes/client-node';
import type { K8sObject } from '../config/k8s-yaml';
import { describeError } from '../errors';
import { logger } from '../log';
import { httpStatusOf } from './resources';
import { kubeRequest } from './api-deadline';
import type { Leadership } from './leadership';
import type { RouteParentStatus } from '../routing';
import { desiredParents, parentsSignature, sameParents } from './route-parents';
import { MAX_CONDITION_MESSAGE, kubeTime } from './conditions';
import { isRecord } from '../config/validation';

/**
 * Tells users what nodemesh made of their objects, where `kubectl describe` shows it:
 * - `status.conditions[type=Accepted]` through the status subresource (JSON merge patch):
 *   True/Accepted for a valid object, False/Invalid with the rejection reason otherwise,
 *   with the generation it judged as observedGeneration. Other conditions are kept.
 * - for a rejection, a Warning Event `Rejected` on the object (source nodemesh-agent). Its
 *   name is derived from the object's uid and the reason, so the same rejection again
 *   (a new generation with the same mistake) bumps `count` on one Event instead of
 *   adding Events.
 *
 * It writes only what changed: nothing when the object's status already says the same
 * (so agents on other nodes, seeing the status one of them wrote, stay quiet), and at most
 * once per object version while its own write makes its way back through the watch.
 *
 * - for Gateway API routes (a RouteVerdict), status.parents: one entry per Service
 *   parentRef with Accepted and ResolvedRefs (kube/route-parents.ts); no Events, as other
 *   Gateway API implementations.
 *
 * With a `leader` (the Lease election of src/kube/leader-election.ts), only the agent that
 * leads writes: the others answer 'skipped', so N agents do not write N times, nor
 * fight over lastTransitionTime or an Event's count.
 */

export const ACCEPTED_CONDITION = 'Accepted';
export const REJECTED_EVENT_REASON = 'Rejected';
export const STATUS_COMPONENT = 'nodemesh-agent';

interface VerdictTarget {
  /** The object as last seen: apiVersion, kind, metadata (name, namespace, uid, generation, resourceVersion), status. */
  object: K8sObject;
  /** Its resource's plural (for the status subresource's path). */
  plural: string;
  namespaced: boolean;
}

/** An Accepted condition (kinds with status 'accepted-condition'). */
export interface AcceptedVerdict extends VerdictTarget {
  accepted: boolean;
  /** Why it was rejected (required when accepted is false). */
  message?: string;
}

/** A route's status.parents (kinds with status 'route-parents'). */
export interface RouteVerdict extends VerdictTarget {
  parents: RouteParentStatus[];
}

export type ObjectVerdict = AcceptedVerdict | RouteVerdict;

function isRouteVerdict(verdict: ObjectVerdict): verdict is RouteVerdict {
  return 'parents' in verdict;
}

export interface KubeStatusWriterOptions {
  kubeConfig: KubeConfig;
  /** Event source component (default nodemesh-agent). */
  component?: string;
  /** This node's name: the Event's source.host and reportingInstance. */
  host?: string;
  /** When given, nothing is written while this agent does not lead. */
  leader?: Leadership;
  now?: () => Date;
}

/** 'skipped': not the leader, so not this agent's to write. */
export type WriteOutcome = 'unchanged' | 'written' | 'gone' | 'failed' | 'skipped';

interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
}

function metaOf(object: K8sObject): { name: string; namespace: string | undefined; uid: string; generation: number | undefined; resourceVersion: string | undefined } {
  const meta = isRecord(object.metadata) ? object.metadata : {};
  return {
    name: typeof meta.name === 'string' ? meta.name : '',
    namespace: typeof meta.namespace === 'string' && meta.namespace !== '' ? meta.namespace : undefined,
    uid: typeof meta.uid === 'string' ? meta.uid : '',
    generation: typeof meta.generation === 'number' ? meta.generation : undefined,
    resourceVersion: typeof meta.resourceVersion === 'string' ? meta.resourceVersion : undefined,
  };
}

function conditionsOf(object: K8sObject): Condition[] {
  const status = isRecord(object.status) ? object.status : {};
  return Array.isArray(status.conditions) ? (status.conditions.filter(isRecord) as unknown as Condition[]) : [];
}

/** The stable name of the Event for one (object, reason). */
export function rejectionEventName(objectName: string, uid: string, message: string): string {
  const hash = createHash('sha256').update(`${uid}\n${message}`).digest('hex').slice(0, 16);
  return `${objectName.slice(0, 200)}.nodemesh.${hash}`;
}

export class KubeStatusWriter {
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private readonly component: string;
  private readonly host: string | undefined;
  private readonly now: () => Date;
  private readonly log = logger('kube', { part: 'status' });
  /** uid -> what we last wrote and the object version we wrote it over. */
  private readonly written = new Map<string, { signature: string; overResourceVersion: string | undefined }>();
  private queue: Promise<unknown> = Promise.resolve();
  /** namespace/name of an Event -> its count, for the Events this writer created or bumped. */
  private readonly eventCounts = new Map<string, number>();
  /** Whether the last write found this agent leading. */
  private wasLeading = false;
  readonly leader: Leadership | undefined;

  constructor(options: KubeStatusWriterOptions) {
    this.custom = options.kubeConfig.makeApiClient(CustomObjectsApi);
    this.core = options.kubeConfig.makeApiClient(CoreV1Api);
    this.component = options.component ?? STATUS_COMPONENT;
    this.host = options.host;
    this.leader = options.leader;
    this.now = options.now ?? (() => new Date());
  }

  /** Writes the verdicts one after the other (calls are queued, never concurrent). */
  apply(verdicts: readonly ObjectVerdict[]): Promise<WriteOutcome[]> {
    const run = this.queue.then(async () => {
      const out: WriteOutcome[] = [];
      for (const verdict of verdicts) out.push(await this.write(verdict));
      return out;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Writes one verdict (status condition, and an Event for a rejection) unless nothing changed. */
  async write(verdict: ObjectVerdict): Promise<WriteOutcome> {
    if (!this.mayWrite()) return 'skipped';
    const meta = metaOf(verdict.object);
    const signature = this.signature(verdict);
    if (this.isCurrent(verdict, verdict.object)) {
      this.written.set(meta.uid, { signature, overResourceVersion: undefined });
      return 'unchanged';
    }
    const memo = this.written.get(meta.uid);
    if (memo && memo.signature === signature && memo.overResourceVersion === meta.resourceVersion) return 'unchanged'; // our write is on its way back
    let object = verdict.object;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await this.patchStatus(verdict, object);
        this.written.set(meta.uid, { signature, overResourceVersion: meta.resourceVersion });
        if (!isRouteVerdict(verdict) && !verdict.accepted && this.mayWrite()) await this.recordEvent(verdict);
        return 'written';
      } catch (err) {
        const status = httpStatusOf(err);
        if (status === 404) return 'gone';
        if (status === 409 && attempt === 0) {
          // Someone else wrote the object since we saw it: read it again and retry once.
          try {
            object = await this.read(verdict);
          } catch (readErr) {
            if (httpStatusOf(readErr) === 404) return 'gone';
            throw readErr;
          }
          if (this.isCurrent(verdict, object)) return 'unchanged';
          continue;
        }
        this.log.warn({ err: describeError(err), object: `${verdict.object.kind} ${meta.namespace ?? ''}/${meta.name}`, status }, 'writing the status failed; will retry on the next change');
        return 'failed';
      }
    }
    return 'failed';
  }

  /** What this writer would write, as a string: the same signature twice is the same write. */
  private signature(verdict: ObjectVerdict): string {
    const generation = metaOf(verdict.object).generation;
    if (isRouteVerdict(verdict)) return parentsSignature(verdict.parents, generation);
    const wanted = this.condition(verdict, undefined);
    return JSON.stringify([wanted.status, wanted.reason, wanted.message, wanted.observedGeneration]);
  }

  /** Does the object's status already say what the verdict says? */
  private isCurrent(verdict: ObjectVerdict, object: K8sObject): boolean {
    if (isRouteVerdict(verdict)) return sameParents(object, verdict.parents, metaOf(object).generation);
    return this.sameCondition(object, this.condition({ ...verdict, object }, undefined));
  }

  /**
   * True without a leader gate, or while leading. Leading again after a pause forgets what
   * this writer remembered: another leader may have written statuses and bumped Event
   * counts in between.
   */
  private mayWrite(): boolean {
    if (!this.leader) return true;
    const leading = this.leader.isLeader;
    if (leading && !this.wasLeading) {
      this.written.clear();
      this.eventCounts.clear();
    }
    this.wasLeading = leading;
    return leading;
  }

  private condition(verdict: AcceptedVerdict, previous: Condition | undefined): Condition {
    const meta = metaOf(verdict.object);
    const status = verdict.accepted ? 'True' : 'False';
    const condition: Condition = {
      type: ACCEPTED_CONDITION,
      status,
      reason: verdict.accepted ? 'Accepted' : 'Invalid',
      message: (verdict.accepted ? 'accepted by nodemesh' : verdict.message ?? 'rejected by nodemesh').slice(0, MAX_CONDITION_MESSAGE),
      lastTransitionTime: previous && previous.status === status ? previous.lastTransitionTime : kubeTime(this.now()),
    };
    if (meta.generation !== undefined) condition.observedGeneration = meta.generation;
    return condition;
  }

  private sameCondition(object: K8sObject, wanted: Condition): boolean {
    const current = conditionsOf(object).find((c) => c.type === ACCEPTED_CONDITION);
    return (
      current !== undefined &&
      current.status === wanted.status &&
      current.reason === wanted.reason &&
      current.message === wanted.message &&
      current.observedGeneration === wanted.observedGeneration
    );
  }

  private apiParts(verdict: ObjectVerdict): { group: string; version: string } {
    const apiVersion = verdict.object.apiVersion ?? '';
    const slash = apiVersion.indexOf('/');
    return slash < 0 ? { group: '', version: apiVersion } : { group: apiVersion.slice(0, slash), version: apiVersion.slice(slash + 1) };
  }

  private async read(verdict: ObjectVerdict): Promise<K8sObject> {
    const meta = metaOf(verdict.object);
    const { group, version } = this.apiParts(verdict);
    const found = await kubeRequest(verdict.namespaced
      ? this.custom.getNamespacedCustomObject({ group, version, namespace: meta.namespace ?? 'default', plural: verdict.plural, name: meta.name })
      : this.custom.getClusterCustomObject({ group, version, plural: verdict.plural, name: meta.name }), `reading ${verdict.plural} ${meta.namespace ?? ''}/${meta.name}`);
    return found as K8sObject;
  }

  /** The status to write over `object`'s. */
  private statusBody(verdict: ObjectVerdict, object: K8sObject): Record<string, unknown> {
    const meta = metaOf(object);
    if (isRouteVerdict(verdict)) return { parents: desiredParents(object, verdict.parents, meta.generation, kubeTime(this.now())) };
    const previous = conditionsOf(object).find((c) => c.type === ACCEPTED_CONDITION);
    const condition = this.condition({ ...verdict, object }, previous);
    return { conditions: [...conditionsOf(object).filter((c) => c.type !== ACCEPTED_CONDITION), condition] };
  }

  private async patchStatus(verdict: ObjectVerdict, object: K8sObject): Promise<void> {
    const meta = metaOf(object);
    // A merge patch replaces lists whole: send every other condition (or other
    // controllers' parent entries) as it is, and make the write conditional on the
    // version we read them from.
    const body = { metadata: { resourceVersion: meta.resourceVersion }, status: this.statusBody(verdict, object) };
    const { group, version } = this.apiParts(verdict);
    const options = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
    await kubeRequest(verdict.namespaced
      ? this.custom.patchNamespacedCustomObjectStatus({ group, version, namespace: meta.namespace ?? 'default', plural: verdict.plural, name: meta.name, body }, options)
      : this.custom.patchClusterCustomObjectStatus({ group, version, plural: verdict.plural, name: meta.name, body }, options), `patching the status of ${verdict.plural} ${meta.namespace ?? ''}/${meta.name}`);
  }

  /**
   * Creates the Warning Event, or bumps the count of the one this rejection already has.
   * The count comes from memory (the agent's RBAC needs no `get` on events for that); only
   * after a restart, when the Event exists but is not remembered, is it read, and if that
   * is not allowed, only lastTimestamp and message are refreshed. An Event that expired
   * (the API server drops them after an hour) is created again.
   */
  private async recordEvent(verdict: AcceptedVerdict): Promise<void> {
    const meta = metaOf(verdict.object);
    const message = (verdict.message ?? 'rejected by nodemesh').slice(0, 1024);
    const namespace = meta.namespace ?? 'default';
    const name = rejectionEventName(meta.name, meta.uid, message);
    const now = new Date(Math.floor(this.now().getTime() / 1000) * 1000);
    const event: CoreV1Event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name, namespace },
      involvedObject: {
        apiVersion: verdict.object.apiVersion,
        kind: verdict.object.kind,
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        resourceVersion: meta.resourceVersion,
      },
      reason: REJECTED_EVENT_REASON,
      message,
      type: 'Warning',
      source: this.host === undefined ? { component: this.component } : { component: this.component, host: this.host },
      reportingComponent: this.component,
      reportingInstance: this.host ?? this.component,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    const key = `${namespace}/${name}`;
    const patch = async (count: number | undefined): Promise<void> => {
      const body: Record<string, unknown> = { lastTimestamp: kubeTime(now), message };
      if (count !== undefined) body.count = count;
      await kubeRequest(this.core.patchNamespacedEvent({ name, namespace, body }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)), `patching Event ${namespace}/${name}`);
      if (count !== undefined) this.eventCounts.set(key, count);
    };
    try {
      const known = this.eventCounts.get(key);
      if (known !== undefined) {
        try {
          await patch(known + 1);
          return;
        } catch (err) {
          if (httpStatusOf(err) !== 404) throw err;
          this.eventCounts.delete(key); // expired: create it again
        }
      }
      try {
        await kubeRequest(this.core.createNamespacedEvent({ namespace, body: event }), `creating an Event in ${namespace}`);
        this.eventCounts.set(key, 1);
        return;
      } catch (err) {
        if (httpStatusOf(err) !== 409) throw err;
      }
      let count: number | undefined;
      try {
        count = ((await kubeRequest(this.core.readNamespacedEvent({ name, namespace }), `reading Event ${namespace}/${name}`)).count ?? 1) + 1;
      } catch (err) {
        if (httpStatusOf(err) !== 403) throw err;
      }
      await patch(count);
    } catch (err) {
      this.log.warn({ err: describeError(err), event: key }, 'recording the rejection Event failed');
    }
  }
}
