import type { OtherObject } from '../../config/objects';

/**
 * The nodemesh.dev/v1alpha1 TrafficPolicy CRD: resilience settings attached to one
 * Service by targetRef (load balancing, outlier detection, connection pool, fault
 * injection, local rate limiting): the parsed shapes and their defaults. The parser is
 * parse-traffic-policy.ts; the behaviour lives in the other files of src/policy/client,
 * and policy-set.ts ties them together.
 */

export const TRAFFIC_POLICY_KIND = 'TrafficPolicy';
export const POLICY_GROUP = 'nodemesh.dev';
export const TRAFFIC_POLICY_API_VERSION = `${POLICY_GROUP}/v1alpha1`;

export type LoadBalancerType = 'RoundRobin' | 'LeastRequest' | 'EWMA' | 'Random' | 'ConsistentHash';
export const LOAD_BALANCER_TYPES: readonly LoadBalancerType[] = ['RoundRobin', 'LeastRequest', 'EWMA', 'Random', 'ConsistentHash'];

export interface LoadBalancerConfig {
  type: LoadBalancerType;
  /** Set exactly when type is ConsistentHash. `header` is lower-case. */
  consistentHash?: { header: string };
}

export interface OutlierDetectionConfig {
  /** Consecutive 5xx responses (connect failures count too) before ejection; 0 disables. */
  consecutive5xxErrors: number;
  /** Consecutive 502/503/504 responses and connect failures/resets before ejection; 0 disables. */
  consecutiveGatewayErrors: number;
  /** After each interval an endpoint stays healthy, its ejection multiplier drops by one. */
  intervalMs: number;
  baseEjectionTimeMs: number;
  maxEjectionTimeMs: number;
  /** 0-100: never more than this share of the endpoints is ejected, and never all of them. */
  maxEjectionPercent: number;
}

export interface ConnectionPoolConfig {
  maxConnections: number;
  maxPendingRequests: number;
  maxRequests: number;
}

export interface FaultInjectionConfig {
  delay?: { percentage: number; fixedDelayMs: number };
  /** Exactly one of httpStatus and grpcStatus is set. */
  abort?: { percentage: number; httpStatus?: number; grpcStatus?: number };
}

export interface TokenBucketConfig {
  maxTokens: number;
  tokensPerFill: number;
  fillIntervalMs: number;
}

export interface RateLimitConfig {
  tokenBucket: TokenBucketConfig;
  perSourceWorkload: boolean;
}

export interface TrafficPolicy {
  /** namespace/name of the TrafficPolicy object. */
  key: string;
  namespace: string;
  name: string;
  /** The file it came from (the embedded source), for messages. */
  file: string;
  /** metadata.creationTimestamp as ISO 8601, when the object has one. */
  creationTimestamp?: string;
  /** namespace/name of the Service it attaches to (always its own namespace). */
  targetService: string;
  loadBalancer: LoadBalancerConfig;
  outlierDetection?: OutlierDetectionConfig;
  connectionPool?: ConnectionPoolConfig;
  faultInjection?: FaultInjectionConfig;
  rateLimit?: RateLimitConfig;
}

export const DEFAULT_LOAD_BALANCER: LoadBalancerConfig = Object.freeze({ type: 'RoundRobin' as const });

export const OUTLIER_DEFAULTS: Readonly<OutlierDetectionConfig> = Object.freeze({
  consecutive5xxErrors: 5,
  consecutiveGatewayErrors: 0,
  intervalMs: 10_000,
  baseEjectionTimeMs: 30_000,
  maxEjectionTimeMs: 300_000,
  maxEjectionPercent: 10,
});

export const CONNECTION_POOL_DEFAULTS: Readonly<ConnectionPoolConfig> = Object.freeze({
  maxConnections: 1024,
  maxPendingRequests: 1024,
  maxRequests: 1024,
});

export function isTrafficPolicy(other: OtherObject): boolean {
  return other.kind === TRAFFIC_POLICY_KIND && other.apiVersion.split('/')[0] === POLICY_GROUP;
}
