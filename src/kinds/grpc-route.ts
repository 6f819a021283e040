import { GATEWAY_GROUP } from '../routing';
import type { ObjectKind } from './object-kind';

/** Gateway API GRPCRoutes attached to Services: as HTTPRoute (http-route.ts). */
export const GRPC_ROUTE_KIND: ObjectKind = {
  name: 'GRPCRoute',
  resource: { group: GATEWAY_GROUP, version: 'v1', kind: 'GRPCRoute', plural: 'grpcroutes', namespaced: true, optional: true, hasStatus: true },
  watched: true,
  slot: 'routes',
  status: 'route-parents',
};
