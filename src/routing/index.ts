/** The Gateway API routing engine (HTTPRoute / GRPCRoute attached to Services). */
export { compileRoutes, RouteTable, RETRY_DEFAULTS, ROUTE_REF_WARNING, GATEWAY_GROUP, type CompileResult, type ServiceRoutes, type RouteTableRow } from './compile';
export { pickWeighted } from './backends';
export { applyHeaderModifier, applyUrlRewrite, redirectLocation, shouldMirror, replacePrefix, hostWithoutPort } from './filters';
export { RetryBudget, type RetryBudgetOptions } from './retry-budget';
export { parseGatewayDuration, formatGatewayDuration } from '../config/duration';
export { isIdempotent } from './idempotent';
export type * from './types';
