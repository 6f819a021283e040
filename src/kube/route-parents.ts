import type { K8sObject } from '../config/k8s-yaml';
import { isRecord } from '../config/validation';
import { MAX_CONDITION_MESSAGE } from './conditions';
import { ROUTE_CONTROLLER_NAME, type ParentReference, type RouteParentStatus } from '../routing';

/**
 * A Gateway API route's status.parents as nodemesh writes it: the entries of other
 * controllers (an ingress controller that also serves the route's Gateway parents) are
 * kept as they are, and nodemesh's own (controllerName nodemesh.dev/mesh) are replaced by
 * one entry per Service parentRef. A condition keeps its lastTransitionTime while its
 * status stays the same, as the spec asks.
 */

interface WrittenCondition {
  type: string;
  status: string;
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
}

interface WrittenParent {
  parentRef: ParentReference;
  controllerName: string;
  conditions: WrittenCondition[];
}

function currentParents(object: K8sObject): Record<string, unknown>[] {
  const status = isRecord(object.status) ? object.status : {};
  return Array.isArray(status.parents) ? status.parents.filter(isRecord) : [];
}

/** The same parentRef, with the API server's defaults (group, kind, namespace) applied to both sides. */
function sameRef(a: unknown, b: ParentReference, routeNamespace: string | undefined): boolean {
  if (!isRecord(a)) return false;
  const norm = (r: Record<string, unknown>) => [
    r.group === 'core' ? '' : r.group ?? 'gateway.networking.k8s.io',
    r.kind ?? 'Gateway',
    r.name,
    r.namespace ?? routeNamespace,
    r.port,
    r.sectionName,
  ];
  return JSON.stringify(norm(a)) === JSON.stringify(norm(b as unknown as Record<string, unknown>));
}

function ours(entry: Record<string, unknown>): boolean {
  return entry.controllerName === ROUTE_CONTROLLER_NAME;
}

/** What status.parents should be. */
export function desiredParents(object: K8sObject, parents: readonly RouteParentStatus[], generation: number | undefined, now: string): unknown[] {
  const routeNamespace = isRecord(object.metadata) && typeof object.metadata.namespace === 'string' ? object.metadata.namespace : undefined;
  const current = currentParents(object);
  const mine: WrittenParent[] = parents.map((p) => {
    const previous = current.find((c) => ours(c) && sameRef(c.parentRef, p.parentRef, routeNamespace));
    const previousConditions = previous && Array.isArray(previous.conditions) ? previous.conditions.filter(isRecord) : [];
    return {
      parentRef: p.parentRef,
      controllerName: ROUTE_CONTROLLER_NAME,
      conditions: p.conditions.map((c) => {
        const before = previousConditions.find((x) => x.type === c.type);
        const written: WrittenCondition = {
          type: c.type,
          status: c.status,
          reason: c.reason,
          message: c.message.slice(0, MAX_CONDITION_MESSAGE),
          lastTransitionTime: before && before.status === c.status && typeof before.lastTransitionTime === 'string' ? before.lastTransitionTime : now,
        };
        if (generation !== undefined) written.observedGeneration = generation;
        return written;
      }),
    };
  });
  return [...current.filter((c) => !ours(c)), ...mine];
}

/** True when nodemesh's entries already say exactly this (times aside). */
export function sameParents(object: K8sObject, parents: readonly RouteParentStatus[], generation: number | undefined): boolean {
  const routeNamespace = isRecord(object.metadata) && typeof object.metadata.namespace === 'string' ? object.metadata.namespace : undefined;
  const current = currentParents(object).filter(ours);
  if (current.length !== parents.length) return false;
  return parents.every((p, i) => {
    const c = current[i]!;
    if (!sameRef(c.parentRef, p.parentRef, routeNamespace)) return false;
    const conditions = Array.isArray(c.conditions) ? c.conditions.filter(isRecord) : [];
    return conditions.length === p.conditions.length && p.conditions.every((want, j) => {
      const got = conditions[j]!;
      return got.type === want.type && got.status === want.status && got.reason === want.reason && got.message === want.message.slice(0, MAX_CONDITION_MESSAGE) && got.observedGeneration === generation;
    });
  });
}

/** The signature of what nodemesh writes for a route (to remember a write on its way back). */
export function parentsSignature(parents: readonly RouteParentStatus[], generation: number | undefined): string {
  return JSON.stringify([generation, parents]);
}
