import { GATEWAY_GROUP } from '../routing';
import type { ObjectKind } from './object-kind';

/**
 * Gateway API HTTPRoutes attached to Services (GAMMA). Compiled with the GRPCRoutes by the
 * proxy configuration, against the snapshot's Services (a route's backends and ports
 * resolve against them), so not parsed by the source. Their status is one
 * status.parents entry per Service parentRef (routing/route-status.ts).
 */
export const HTTP_ROUTE_KIND: ObjectKind = {
  name: 'HTTPRoute',
  resource: { group: GATEWAY_GROUP, version: 'v1', kind: 'HTTPRoute', plural: 'httproutes', namespaced: true, optional: true, hasStatus: true },
  watched: true,
  slot: 'routes',
  status: 'route-parents',
};
