/** The Gateway API routing engine (HTTPRoute / GRPCRoute attached to Services): parsing (parse-*.ts, compile.ts) and the route table (route-table.ts). */
export { compileRoutes, isRoute, RouteCompiler, ROUTE_KINDS, ROUTE_REF_WARNING, type CompileResult } from './compile';
export { RouteTable, type ServiceRoutes, type RouteTableRow } from './route-table';
export { RETRY_DEFAULTS } from './parse-route';
export { GATEWAY_GROUP } from './gateway-group';
export { ROUTE_CONTROLLER_NAME, type RouteStatus, type RouteParentStatus, type RouteCondition, type ParentReference } from './route-status';
export { pickWeighted } from './backends';
export { applyHeaderModifier, applyUrlRewrite, redirectLocation, shouldMirror, replacePrefix, hostWithoutPort } from './filters';
export { RetryBudget, type RetryBudgetOptions } from './retry-budget';
export { parseGatewayDuration, formatGatewayDuration } from '../config/duration';
export { isIdempotent } from './idempotent';
export type * from './types';
