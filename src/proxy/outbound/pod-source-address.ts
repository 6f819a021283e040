/**
 * The address an outbound connection came from, as the pod's: eBPF capture rewrites the
 * app's connect() to the proxy's loopback listener, so the kernel gives the socket a
 * loopback source; the pod's own address of that family is what logs should name.
 */
export function podSourceAddress(remote: string | undefined, podIPs: readonly string[]): string | undefined {
  if (remote === undefined) return undefined;
  const v4 = remote.startsWith('127.') || remote.startsWith('::ffff:127.');
  if (!v4 && remote !== '::1') return remote;
  return podIPs.find((ip) => (v4 ? !ip.includes(':') : ip.includes(':'))) ?? remote;
}
