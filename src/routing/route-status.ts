import type { RouteKind } from './types';
import { read, type Obj } from './route-fields';

/**
 * Gateway API route status as nodemesh computes it: one entry per Service parentRef with
 * the conditions the spec defines for a route's parent (Accepted, ResolvedRefs) and its
 * reasons, so that `kubectl get httproute -o yaml` says why a route does nothing. The
 * Kubernetes source writes these (kube/status-writer.ts); /debug/config shows them in
 * every mode.
 */

/** status.parents[].controllerName of the entries nodemesh owns (a domain-prefixed path, as the spec asks). */
export const ROUTE_CONTROLLER_NAME = 'nodemesh.dev/mesh';

export type ConditionStatus = 'True' | 'False' | 'Unknown';

/**
 * Reasons, from the spec's RouteConditionReason:
 * - Accepted: `Accepted`; `NoMatchingParent` (the Service, or its port or sectionName, does
 *   not exist); `UnsupportedValue` (a field nodemesh cannot honour: the route is rejected).
 * - ResolvedRefs: `ResolvedRefs`; `BackendNotFound`; `InvalidKind` (a backend that is not a
 *   core Service). `RefNotPermitted` is not used: mesh routes may send to any namespace
 *   (GEP-1294), so no ReferenceGrant is needed.
 */
export type AcceptedReason = 'Accepted' | 'NoMatchingParent' | 'UnsupportedValue';
export type ResolvedRefsReason = 'ResolvedRefs' | 'BackendNotFound' | 'InvalidKind';

export interface RouteCondition {
  type: 'Accepted' | 'ResolvedRefs';
  status: ConditionStatus;
  reason: AcceptedReason | ResolvedRefsReason;
  message: string;
}

/** A parentRef as the route wrote it (the fields it set, nothing defaulted but group and kind). */
export interface ParentReference {
  group: string;
  kind: string;
  name: string;
  namespace?: string;
  port?: number;
  sectionName?: string;
}

export interface RouteParentStatus {
  parentRef: ParentReference;
  controllerName: string;
  conditions: RouteCondition[];
}

/** What nodemesh makes of one route, for each parent it owns. */
export interface RouteStatus {
  kind: RouteKind;
  namespace: string;
  name: string;
  /** Where the object came from (a file, or its API path): matches its rejections' `file`. */
  file: string;
  parents: RouteParentStatus[];
}

/** A backend reference that does not resolve (ResolvedRefs=False). */
export interface RefProblem {
  reason: Exclude<ResolvedRefsReason, 'ResolvedRefs'>;
  message: string;
}

export function parentStatus(parentRef: ParentReference, parentProblem: string | undefined, refProblems: readonly RefProblem[]): RouteParentStatus {
  const accepted: RouteCondition = parentProblem === undefined
    ? { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'accepted by nodemesh' }
    : { type: 'Accepted', status: 'False', reason: 'NoMatchingParent', message: parentProblem };
  const resolved: RouteCondition = refProblems.length === 0
    ? { type: 'ResolvedRefs', status: 'True', reason: 'ResolvedRefs', message: 'every backend resolves' }
    : {
        type: 'ResolvedRefs',
        status: 'False',
        // One reason per condition: a backend of the wrong kind is the user's to fix first.
        reason: refProblems.some((p) => p.reason === 'InvalidKind') ? 'InvalidKind' : 'BackendNotFound',
        message: refProblems.map((p) => p.message).join('; '),
      };
  return { parentRef, controllerName: ROUTE_CONTROLLER_NAME, conditions: [accepted, resolved] };
}

/** A route rejected whole: not accepted by any of its parents; its references were not checked. */
export function rejectedParentStatus(parentRef: ParentReference, message: string): RouteParentStatus {
  return {
    parentRef,
    controllerName: ROUTE_CONTROLLER_NAME,
    conditions: [
      { type: 'Accepted', status: 'False', reason: 'UnsupportedValue', message },
      { type: 'ResolvedRefs', status: 'Unknown', reason: 'ResolvedRefs', message: 'not checked: the route is not accepted (see Accepted)' },
    ],
  };
}

/**
 * The Service parentRefs of a route, read without failing (for a route rejected for some
 * other field, whose status must still name its parents). Malformed entries are left out.
 */
export function serviceParentRefs(spec: unknown): ParentReference[] {
  const s = read.record(spec, 'spec');
  if (!s || !Array.isArray(s.parentRefs)) return [];
  const out: ParentReference[] = [];
  for (const entry of s.parentRefs) {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) continue;
    const ref = parentReference(entry as Obj);
    if (ref) out.push(ref);
  }
  return out;
}

/** A parentRef's fields as written, when it names a core Service by name; else undefined. */
export function parentReference(ref: Obj): ParentReference | undefined {
  const group = typeof ref.group === 'string' ? ref.group : undefined;
  if (ref.kind !== 'Service' || (group !== '' && group !== 'core') || typeof ref.name !== 'string' || ref.name === '') return undefined;
  const out: ParentReference = { group, kind: 'Service', name: ref.name };
  if (typeof ref.namespace === 'string' && ref.namespace !== '') out.namespace = ref.namespace;
  if (typeof ref.port === 'number') out.port = ref.port;
  if (typeof ref.sectionName === 'string' && ref.sectionName !== '') out.sectionName = ref.sectionName;
  return out;
}
