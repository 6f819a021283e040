import { native } from './native';
import type { OriginalDestination, SocketAddress } from './native-binding';
import { fdOf, type FdSource } from './fd';
import { assertBoolean, assertFd, assertU32 } from './validate';

/**
 * Socket options and addresses of sockets Node already owns (or raw fds). Each accepts a
 * net.Socket, a net.Server or a descriptor.
 */

/**
 * Where the app meant to connect before capture redirected it: SO_ORIGINAL_DST (IPv4,
 * also for IPv4 connections on dual-stack sockets) or IP6T_SO_ORIGINAL_DST (IPv6), from
 * conntrack or the BPF getsockopt hook. An IPv4-mapped answer is reported as family 4.
 * Throws code 'ENOENT' when the connection was not redirected.
 */
export function originalDestination(socket: FdSource): OriginalDestination {
  return native.getOriginalDst(fdOf(socket));
}

/** SO_COOKIE: the kernel's unique id of the socket (what BPF programs see). */
export function socketCookie(socket: FdSource): bigint {
  return native.socketCookie(fdOf(socket));
}

/** SO_MARK (needs CAP_NET_ADMIN). */
export function setMark(socket: FdSource, mark: number): void {
  const fd = fdOf(socket);
  assertU32('mark', mark);
  native.setMark(fd, mark);
}

/** IP_TRANSPARENT / IPV6_TRANSPARENT, by the socket's family. */
export function setTransparent(socket: FdSource, on: boolean): void {
  const fd = fdOf(socket);
  assertBoolean('on', on);
  native.setTransparent(fd, on);
}

/** SO_REUSEPORT. */
export function setReusePort(socket: FdSource, on: boolean): void {
  const fd = fdOf(socket);
  assertBoolean('on', on);
  native.setReusePort(fd, on);
}

/** getsockname(2) as { family, address, port }. */
export function localAddress(socket: FdSource): SocketAddress {
  return native.localAddress(fdOf(socket));
}

/** getpeername(2) as { family, address, port }. */
export function peerAddress(socket: FdSource): SocketAddress {
  return native.peerAddress(fdOf(socket));
}

/** close(2) for a descriptor no Node object owns (never for one wrapped in a net.Socket). */
export function closeFd(fd: number): void {
  assertFd('fd', fd);
  native.close(fd);
}
