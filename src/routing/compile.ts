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
  return new RouteCompiler().compile(others, services);
}

/** What one route compiled to, and the Services it looked up (its inputs besides itself). */
interface CompiledRoute {
  other: OtherObject;
  lookups: ReadonlyMap<string, ServiceInfo | undefined>;
  route: RouteSpec | undefined;
  rejected: RejectedObject | undefined;
  warnings: RejectedObject[];
  status: RouteStatus | undefined;
}

/**
 * compileRoutes for a configuration compiled again after every change: a route whose
 * object and looked-up Services are the same objects as last time (by reference: sources
 * and snapshots keep unchanged objects) is not parsed again, so a change costs the routes
 * it touches; the table is then put together from the routes' specs (RouteTable).
 */
export class RouteCompiler {
  private last = new Map<string, CompiledRoute>();

  compile(others: readonly OtherObject[], services: ReadonlyMap<string, ServiceInfo>): CompileResult {
    const rejected: RejectedObject[] = [];
    const warnings: RejectedObject[] = [];
    const statuses: RouteStatus[] = [];
    const parsed: RouteSpec[] = [];
    const next = new Map<string, CompiledRoute>();
    for (const other of others) {
      if (!isRoute(other)) continue;
      const id = `${other.file}\u0000${other.apiVersion}\u0000${other.kind}\u0000${other.namespace ?? ''}/${other.name}`;
      let compiled = this.last.get(id);
      if (!compiled || compiled.other !== other || ![...compiled.lookups].every(([key, svc]) => services.get(key) === svc)) compiled = compileOne(other, services);
      next.set(id, compiled);
      if (compiled.rejected) rejected.push(compiled.rejected);
      warnings.push(...compiled.warnings);
      if (compiled.route) parsed.push(compiled.route);
      if (compiled.status) statuses.push(compiled.status);
    }
    this.last = next;
    return { table: new RouteTable(parsed), rejected, warnings, statuses };
  }
}

function compileOne(other: OtherObject, services: ReadonlyMap<string, ServiceInfo>): CompiledRoute {
  const kind = other.kind as RouteKind;
  const namespace = other.namespace ?? 'default';
  const label = objectLabel(kind, namespace, other.name);
  const lookups = new Map<string, ServiceInfo | undefined>();
  const ctx: Context = { kind, namespace, services: recording(services, lookups), warnings: [], parents: [], refProblems: [] };
  const out: CompiledRoute = { other, lookups, route: undefined, rejected: undefined, warnings: [], status: undefined };
  const status = (parents: RouteStatus['parents']): void => {
    if (parents.length > 0) out.status = { kind, namespace, name: other.name, file: other.file, parents };
  };
  try {
    out.route = parseRoute(other, ctx);
    for (const w of ctx.warnings) out.warnings.push({ ...rejection(other.file, label, w.reason, w.path), code: ROUTE_REF_WARNING });
    status(ctx.parents.map((p) => parentStatus(p.ref, p.problem, ctx.refProblems)));
  } catch (err) {
    if (!(err instanceof FieldError)) throw err;
    out.rejected = rejection(other.file, label, err.problem, err.path);
    const message = err.path ? `${err.path}: ${err.problem}` : err.problem;
    status(serviceParentRefs(other.object.spec).map((ref) => rejectedParentStatus(ref, message)));
  }
  return out;
}

/** The Services as a route's parse sees them, noting every key it reads (what the route depends on). */
function recording(services: ReadonlyMap<string, ServiceInfo>, lookups: Map<string, ServiceInfo | undefined>): Context['services'] {
  return {
    get(key: string): ServiceInfo | undefined {
      const value = services.get(key);
      lookups.set(key, value);
      return value;
    },
  };
}
