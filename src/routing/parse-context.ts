import type { ServiceInfo } from '../mesh/model';
import type { Grant } from './reference-grant';

/** What the readers of one route need beyond its own fields, and where they put warnings. */

export type RouteKind = 'HTTPRoute' | 'GRPCRoute';

export interface Context {
  kind: RouteKind;
  namespace: string;
  services: ReadonlyMap<string, ServiceInfo>;
  grants: readonly Grant[];
  /** References that do not resolve now: the route still applies (code WARN_NM_ROUTE_REF). */
  warnings: Array<{ path: string; reason: string }>;
}
