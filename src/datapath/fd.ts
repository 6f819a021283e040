import type * as net from 'node:net';
import { assertFd, describeValue, invalidArgument } from './validate';

/** Anything that carries a socket descriptor: a raw fd, a net.Socket or a net.Server. */
export type FdSource = number | net.Socket | net.Server;

/**
 * The file descriptor behind a Node socket or server. Node keeps it on the internal
 * libuv handle (`_handle.fd`); this is the one place that reaches for it.
 */
export function fdOf(source: FdSource, name = 'socket'): number {
  if (typeof source === 'number') {
    assertFd(name, source);
    return source;
  }
  if (typeof source !== 'object' || source === null) {
    throw invalidArgument(`${name} must be a file descriptor, a net.Socket or a net.Server, got ${describeValue(source)}`);
  }
  const handle = (source as unknown as { _handle?: { fd?: unknown } | null })._handle;
  if (handle === undefined || handle === null) {
    throw invalidArgument(`${name} has no file descriptor: it is not connected or listening yet, or it was closed already`);
  }
  const fd = handle.fd;
  if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0) {
    throw invalidArgument(`${name} has no usable file descriptor (its handle reports ${describeValue(fd)}); only TCP sockets and servers have one`);
  }
  return fd;
}
