import { randomFillSync, randomUUID } from 'node:crypto';

/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/) for the node proxy: keep the
 * caller's trace, give the proxy's hop its own span id, start a trace when there is none.
 *
 *   traceparent = version "-" trace-id "-" parent-id "-" trace-flags
 *                 2 hex      32 hex       16 hex       2 hex          (lowercase only)
 *
 * Invalid, and so replaced by a fresh trace: a missing header, several traceparent headers,
 * wrong length, uppercase or non-hex characters, an all-zero trace id or parent id, version
 * "ff", and version "00" with anything after the flags. A later version (01..fe) is parsed
 * as the spec asks (its first 55 characters, then end or "-") and re-emitted as "00".
 * `tracestate` is never parsed nor changed: the caller forwards it as it came.
 *
 * Per call: one regex test against a precompiled pattern, then fixed-offset slices.
 */

export type TraceHeaders = Record<string, string | string[] | undefined>;

/** Fills and returns `size` random bytes; injectable for tests. */
export type RandomBytes = (size: number) => Uint8Array;

export interface TraceContext {
  /** 32 lowercase hex characters. */
  traceId: string;
  /** The span id of the incoming traceparent (the caller's span); undefined when the proxy started the trace. */
  parentSpanId: string | undefined;
  /** The proxy's own span id (16 hex), which `traceparent` carries upstream. */
  spanId: string;
  /** 2 hex characters: the incoming flags, kept as they were, or the fresh trace's. */
  flags: string;
  /** The header to send upstream: version 00, same trace id, the proxy's span id, same flags. */
  traceparent: string;
  /** True when no valid traceparent came in and this trace was started here. */
  created: boolean;
}

export interface TraceOptions {
  /**
   * Sampled flag of a trace the proxy starts. Default true: an app behind the proxy whose
   * tracer samples "parent-based" would otherwise drop every trace the proxy starts, where
   * without the proxy it would have sampled its own root span.
   */
  sampleNew?: boolean;
}

const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(?:-|$)/;
const ZERO_TRACE_ID = '00000000000000000000000000000000';
const ZERO_SPAN_ID = '0000000000000000';
const TRACEPARENT_LENGTH = 55;

/** Random bytes from a pool refilled by one crypto call per 4 KiB. */
const POOL_SIZE = 4096;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let poolOffset = POOL_SIZE;

function pooledHex(size: number, random: RandomBytes | undefined): string {
  if (random) return Buffer.from(random(size).subarray(0, size)).toString('hex');
  if (poolOffset + size > POOL_SIZE) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const hex = pool.toString('hex', poolOffset, poolOffset + size);
  poolOffset += size;
  return hex;
}

/** A random id of `size` bytes that is not all zeros (the spec's invalid value). */
function randomId(size: number, zero: string, random: RandomBytes | undefined): string {
  for (let i = 0; i < 8; i++) {
    const id = pooledHex(size, random);
    if (id !== zero) return id;
  }
  // Only a broken injected source returns zeros again and again.
  return zero.slice(0, -1) + '1';
}

function single(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string') return value;
  return value.length === 1 ? value[0] : undefined;
}

/** Parses a traceparent value; undefined when it is not valid. */
export function parseTraceparent(value: string | undefined): { version: string; traceId: string; parentId: string; flags: string } | undefined {
  if (value === undefined || value.length < TRACEPARENT_LENGTH || !TRACEPARENT.test(value)) return undefined;
  const version = value.slice(0, 2);
  if (version === 'ff') return undefined;
  if (version === '00' && value.length !== TRACEPARENT_LENGTH) return undefined;
  const traceId = value.slice(3, 35);
  const parentId = value.slice(36, 52);
  if (traceId === ZERO_TRACE_ID || parentId === ZERO_SPAN_ID) return undefined;
  return { version, traceId, parentId, flags: value.slice(53, 55) };
}

/**
 * The trace context for one request through the proxy. `headers` are Node's (lowercase
 * names); they are not modified: send `traceparent` upstream in place of the incoming one
 * and forward `tracestate` untouched.
 */
export function ensureTraceContext(headers: TraceHeaders, random?: RandomBytes, options: TraceOptions = {}): TraceContext {
  const incoming = parseTraceparent(single(headers['traceparent']));
  const spanId = randomId(8, ZERO_SPAN_ID, random);
  if (incoming) {
    return {
      traceId: incoming.traceId,
      parentSpanId: incoming.parentId,
      spanId,
      flags: incoming.flags,
      traceparent: `00-${incoming.traceId}-${spanId}-${incoming.flags}`,
      created: false,
    };
  }
  const traceId = randomId(16, ZERO_TRACE_ID, random);
  const flags = options.sampleNew === false ? '00' : '01';
  return { traceId, parentSpanId: undefined, spanId, flags, traceparent: `00-${traceId}-${spanId}-${flags}`, created: true };
}

/** Printable ASCII without spaces, 1..200 characters (Envoy keeps any such id as it is). */
const REQUEST_ID = /^[\x21-\x7e]{1,200}$/;

/**
 * The request's x-request-id: the incoming one when it is a single printable token of at
 * most 200 characters, else a new UUID v4.
 */
export function ensureRequestId(headers: TraceHeaders): { requestId: string; created: boolean } {
  const incoming = single(headers['x-request-id']);
  if (incoming !== undefined && REQUEST_ID.test(incoming)) return { requestId: incoming, created: false };
  return { requestId: randomUUID(), created: true };
}
