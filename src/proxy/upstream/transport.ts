import type { Duplex } from 'node:stream';

/**
 * How the proxy reaches one endpoint. Every transport yields a byte stream; HTTP pools
 * run over it unchanged, which is what lets the tunnel (and mTLS later) slot in under
 * the same pools.
 *
 * - direct: a socket from inside the source pod's namespace (the pod's own source IP).
 * - local:  the endpoint is an enrolled pod on this node: hand the request over in-process
 *           and connect from inside the destination pod's namespace, from 127.0.0.6 (no
 *           second trip through the proxy, no extra network hop).
 * - tunnel: the endpoint is an enrolled pod on another node: a CONNECT stream to that
 *           node's proxy on 15008.
 */
export interface UpstreamTransport {
  readonly kind: 'direct' | 'local' | 'tunnel';
  /**
   * Whether what it carries crosses the mesh in mutual TLS (telemetry: principals and
   * connection_security_policy): the tunnel; the same-node hand-over when the proxy holds
   * both workloads' certificates. Unset: plaintext (direct, the inbound side's own hop to
   * the app).
   */
  readonly mtls?: boolean;
  /** Distinguishes pools: connections of different transports are never shared. */
  readonly key: string;
  /**
   * Opens a new connection to the endpoint; it emits 'connect' (sockets) or is ready at
   * once. `carries: 'tcp'`: bytes the proxy relays without parsing (the tunnel tells the
   * destination, HEADER_PROTOCOL); otherwise HTTP from the pipeline's pools.
   */
  open(target: { address: string; port: number }, timeoutMs: number, carries?: 'tcp'): Promise<Duplex>;
}

/** A refused HTTP/2 stream counts too: the peer processed nothing of it (RFC 9113 §8.7). */
const CONNECT_FAILURES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT', 'ERR_NM_TUNNEL_REFUSED', 'ERR_NM_TUNNEL_CLOSED', 'ERR_NM_UPSTREAM_REFUSED_STREAM']);

/** True for errors of opening an upstream connection or stream (Envoy's UF): nothing was sent yet. */
export function isConnectFailure(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; e && depth < 4; depth++) {
    const code = (e as { code?: string }).code;
    if (code && CONNECT_FAILURES.has(code)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}
