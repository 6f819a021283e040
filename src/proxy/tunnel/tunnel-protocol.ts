import { formatHostPort } from '../../util/host-port';

/**
 * The node-to-node tunnel: HTTP/2 CONNECT (RFC 9113 §8.5) on port 15008, like Istio's
 * HBONE. One stream per proxied connection; the stream's :authority is the destination
 * pod's "ip:port". The session runs inside mutual TLS 1.3 (ALPN h2): the source is who
 * its certificate says, and nothing the source writes in a header can change that, so no
 * header names the source any more.
 */
export const TUNNEL_PORT_DEFAULT = 15008;

/** The original destination the app asked for (a ClusterIP:port, or the pod's own). */
export const HEADER_ORIGINAL_DESTINATION = 'x-nodemesh-original-destination';

/**
 * "tcp" when the source relays bytes it did not parse as HTTP (its sniffing said TCP, or
 * the port is declared TCP): the destination relays them without sniffing again, which
 * would make a server-first protocol wait for the sniff timeout a second time. Absent
 * (the source's HTTP pipeline, or an older source): the destination sniffs the stream and
 * parses HTTP to report its requests. Telemetry only: authorization never trusts it.
 */
export const HEADER_PROTOCOL = 'x-nodemesh-protocol';

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
