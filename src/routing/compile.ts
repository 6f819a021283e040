import type { OtherObject } from '../config/objects';
import { FieldError, objectLabel, rejection, type RejectedObject } from '../config/validation';
import type { ServiceInfo } from '../mesh/model';
import type { Context, RouteKind } from './parse-context';
import { parseRoute } from './parse-route';
import { apiGroup, GATEWAY_GROUP } from './gateway-group';
import { parentStatus, rejectedParentStatus, serviceParentRefs, type RouteStatus } from './route-status';
import { RouteTable, type RouteSpec } from './route-table';


/**
 * Gateway API HTTPRoute and GRPCRoute objects attached to Services (GAMMA: parentRefs
 * `{group: "", kind: Service, name, port?}`) into per-Service route tables: parsing
 * (parse-route.ts and the parse-* files it reads with) and then the table (route-table.ts).
 *
 * A route that breaks a rule the API server (or its CEL validations) would have enforced,
 * or that uses something nodemesh cannot honour (an unknown filter, a non-Service
 * backend), is rejected whole with the field to fix; the other routes still compile.
 * References that cannot be resolved now (a backend Service that does not exist, a
 * backend that is not a Service) are not rejections: the backend is kept, marked
 * `unresolved`, requests picking it get a 500 (as the spec says), and a warning is
 * reported. Every route attached to a Service also gets its status (route-status.ts).
 */

/** Warning code: a reference that does not resolve (the route still applies). */
export const ROUTE_REF_WARNING = 'WARN_NM_ROUTE_REF';

/** The route kinds, by the kind name of their objects. */
export const ROUTE_KINDS: readonly RouteKind[] = ['HTTPRoute', 'GRPCRoute'];

export interface CompileResult {
  table: RouteTable;
  /** Routes that do not apply at all, with the field to fix. */
  rejected: RejectedObject[];
  /** Routes that apply but reference something that does not resolve (code WARN_NM_ROUTE_REF). */
  warnings: RejectedObject[];
  /** Per route with a Service parentRef: its parents' Accepted and ResolvedRefs conditions. */
  statuses: RouteStatus[];
}

/** True for a Gateway API route object of a kind nodemesh reads. */
export function isRoute(other: OtherObject): boolean {
  return (ROUTE_KINDS as readonly string[]).includes(other.kind) && apiGroup(other.apiVersion) === GATEWAY_GROUP;
}

/**
 * Compiles every HTTPRoute and GRPCRoute (group gateway.networking.k8s.io, any version)
 * of `others` that attaches to a Service. `services` is the snapshot's Services
 * (namespace/name -> Service), used to resolve backends, ports and sectionNames.
 */
export function compileRoutes(others: readonly OtherObject[], services: ReadonlyMap<string, ServiceInfo>): CompileResult {
  const rejected: RejectedObject[] = [];
  const warnings: RejectedObject[] = [];
  const statuses: RouteStatus[] = [];
  const parsed: RouteSpec[] = [];
  for (const other of others) {
    if (!isRoute(other)) continue;
    const kind = other.kind as RouteKind;
    const namespace = other.namespace ?? 'default';
    const label = objectLabel(kind, namespace, other.name);
    const ctx: Context = { kind, namespace, services, warnings: [], parents: [], refProblems: [] };
    const status = (parents: RouteStatus['parents']): void => {
      if (parents.length > 0) statuses.push({ kind, namespace, name: other.name, file: other.file, parents });
    };
    try {
      const route = parseRoute(other, ctx);
      for (const w of ctx.warnings) warnings.push({ ...rejection(other.file, label, w.reason, w.path), code: ROUTE_REF_WARNING });
      if (route) parsed.push(route);
      status(ctx.parents.map((p) => parentStatus(p.ref, p.problem, ctx.refProblems)));
    } catch (err) {
      if (!(err instanceof FieldError)) throw err;
      const r = rejection(other.file, label, err.problem, err.path);
      rejected.push(r);
      const message = err.path ? `${err.path}: ${err.problem}` : err.problem;
      status(serviceParentRefs(other.object.spec).map((ref) => rejectedParentStatus(ref, message)));
    }
  }
  return { table: new RouteTable(parsed), rejected, warnings, statuses };
}
