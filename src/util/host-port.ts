/**
 * "host:port" as URLs, Host/:authority headers, iptables' --to-destination and endpoint
 * keys all write it: an IPv6 literal goes in brackets ("[fd00::1]:80"), because its own
 * colons would otherwise run into the port's. IPv4 addresses and DNS names never contain
 * a colon, so a colon is what marks IPv6; a host already in brackets is left as it is.
 */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}
