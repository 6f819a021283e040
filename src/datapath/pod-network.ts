import type { Server, Socket } from 'node:net';
import type { SocketAddress } from './native-binding';

export type { SocketAddress };

/**
 * Sockets inside one pod's network namespace. The proxy never enters a namespace itself:
 * it asks for listeners and upstream connections here, and Node's `net` objects own them.
 * Implemented over the native addon by netns-pod-sandbox.ts, by the sidecar's own
 * unprivileged network, and by loopback stand-ins in tests.
 */
export interface PodNetwork {
  /** A listening server on address:port inside the pod (SO_REUSEADDR, marked). */
  listen(options: { family: 4 | 6; address: string; port: number }): Promise<Server>;
  /** A connection from inside the pod; its socket carries the proxy mark so no capture
   * hook sees it, and is bound to bindAddress when given (the inbound path's 127.0.0.6). */
  connect(options: { family: 4 | 6; address: string; port: number; bindAddress?: string; timeoutMs: number }): Socket;
  /**
   * Where an accepted connection was originally going: SO_ORIGINAL_DST (answered by the
   * eBPF getsockopt program or by conntrack), else the socket's local address when it was
   * not redirected (sk_lookup keeps the original local address). Undefined when neither
   * tells, which the caller treats as an error for outbound connections.
   */
  originalDestination(socket: Socket, listenerPort: number): SocketAddress | undefined;
  /** False when the pod's namespace has IPv6 disabled. */
  readonly ipv6: boolean;
}

/** The fd behind a Node server or socket (Linux TCP handles expose it). */
export function handleFd(obj: Server | Socket): number {
  const fd = (obj as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) {
    throw new Error('the socket has no file descriptor (closed, or not a TCP handle)');
  }
  return fd;
}
