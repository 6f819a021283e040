import type { ServiceInfo } from '../mesh/model';
import type { ParentReference, RefProblem } from './route-status';

/** What the readers of one route need beyond its own fields, and where they put warnings and status. */

export type { RouteKind } from './types';
import type { RouteKind } from './types';

export interface Context {
  kind: RouteKind;
  namespace: string;
  /** Services by namespace/name; only looked up by key (RouteCompiler records what a route reads). */
  services: Pick<ReadonlyMap<string, ServiceInfo>, 'get'>;
  /** References that do not resolve now: the route still applies (code WARN_NM_ROUTE_REF). */
  warnings: Array<{ path: string; reason: string }>;
  /** Each Service parentRef as written, with why it does not attach (status: Accepted). */
  parents: Array<{ ref: ParentReference; problem?: string }>;
  /** Backends that do not resolve (status: ResolvedRefs). */
  refProblems: RefProblem[];
}
