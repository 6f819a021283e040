import { formatHostPort } from '../../util/host-port';

/**
 * The node-to-node tunnel: HTTP/2 CONNECT (RFC 9113 §8.5) on port 15008, like Istio's
 * HBONE. One stream per proxied connection; the stream's :authority is the destination
 * pod's "ip:port", and headers carry what the destination proxy needs to know about the
 * source. Plaintext for now: mTLS wraps the TCP connection under the HTTP/2 session, so
 * nothing in this framing changes when it arrives.
 */
export const TUNNEL_PORT_DEFAULT = 15008;

/** namespace/name of the source workload. */
export const HEADER_SOURCE_WORKLOAD = 'x-nodemesh-source-workload';
/** The original destination the app asked for (a ClusterIP:port, or the pod's own). */
export const HEADER_ORIGINAL_DESTINATION = 'x-nodemesh-original-destination';

export function authorityOf(address: string, port: number): string {
  return formatHostPort(address, port);
}

/** Parses "ip:port" / "[ip6]:port"; undefined when malformed. */
export function parseAuthority(authority: string | undefined): { address: string; port: number } | undefined {
  if (!authority) return undefined;
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(authority) ?? /^([0-9.]+):(\d+)$/.exec(authority);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return { address: m[1]!, port };
}
