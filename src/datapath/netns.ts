import * as net from 'node:net';
import { native } from './native';
import type { SocketInNetnsOptions } from './native-binding';
import { NodemeshError } from '../errors';
import { assertBoolean, assertInteger, assertObject, assertPort, assertString, assertU32, invalidArgument } from './validate';

/** Options for a listening socket inside a network namespace. */
export interface NetnsListenOptions {
  /** IP literal to bind ('127.0.0.1', '0.0.0.0', '::'); its family picks the socket's. */
  host: string;
  /** Port, 0 for an ephemeral one (read it back with server.address()). */
  port: number;
  /** listen() backlog (default 511, like Node). */
  backlog?: number;
  /** SO_MARK (the proxy's own sockets carry one so no hook captures them again). */
  mark?: number;
  reusePort?: boolean;
  transparent?: boolean;
  /** IPV6_V6ONLY for IPv6 hosts (default true). */
  v6Only?: boolean;
}

/** Options for a connection made from inside a network namespace. */
export interface NetnsConnectOptions {
  /** IP literal to connect to (no DNS: names would be resolved in the agent's namespace). */
  host: string;
  port: number;
  /** IP literal to bind before connecting (same family as host). */
  localAddress?: string;
  /** Port to bind (only with localAddress; default 0). */
  localPort?: number;
  mark?: number;
  transparent?: boolean;
}

function familyOf(name: string, address: string): 4 | 6 {
  const family = net.isIP(address);
  if (family === 0) throw invalidArgument(`${name} must be an IPv4 or IPv6 literal, got ${JSON.stringify(address)}`);
  return family as 4 | 6;
}

function checkOptionalU32(name: string, value: unknown): void {
  if (value !== undefined) assertU32(name, value);
}

function checkOptionalBoolean(name: string, value: unknown): void {
  if (value !== undefined) assertBoolean(name, value);
}

/**
 * An open network namespace (a pod's /run/netns/NAME or /proc/PID/ns/net): sockets
 * created inside it, and its cookie. The handle owns the namespace fd, which keeps the
 * namespace alive until close().
 */
export class NetnsHandle {
  private fdValue: number | undefined;
  private cookieValue: bigint | undefined;

  private constructor(
    readonly path: string,
    fd: number,
  ) {
    this.fdValue = fd;
  }

  /**
   * Opens and checks a network namespace file. A vanished namespace throws code 'ENOENT'
   * (with `path`); a file that is no network namespace throws ERR_NM_NOT_A_NETNS.
   */
  static open(path: string): NetnsHandle {
    assertString('path', path);
    if (!path.startsWith('/')) throw invalidArgument(`path must be an absolute path to a network namespace file, got ${JSON.stringify(path)}`);
    return new NetnsHandle(path, native.netnsOpen(path));
  }

  get fd(): number {
    if (this.fdValue === undefined) throw new NodemeshError('ERR_NM_CLOSED', `network namespace handle for ${this.path} is closed`);
    return this.fdValue;
  }

  get closed(): boolean {
    return this.fdValue === undefined;
  }

  /** SO_NETNS_COOKIE of the namespace (the key BPF programs use); cached. */
  cookie(): bigint {
    this.cookieValue ??= native.netnsCookie(this.fd);
    return this.cookieValue;
  }

  /** A raw TCP socket fd created inside the namespace; the caller owns (closes) it. */
  socket(options: SocketInNetnsOptions): number {
    assertObject('options', options);
    const { family, bindAddress, bindPort, listenBacklog } = options;
    if (family !== 4 && family !== 6) throw invalidArgument(`options.family must be 4 or 6, got ${String(family)}`);
    if (bindAddress !== undefined) {
      assertString('options.bindAddress', bindAddress);
      if (net.isIP(bindAddress) !== family) {
        throw invalidArgument(`options.bindAddress must be an IPv${family} literal, got ${JSON.stringify(bindAddress)}`);
      }
    }
    if (bindPort !== undefined) {
      assertPort('options.bindPort', bindPort);
      if (bindAddress === undefined) throw invalidArgument('options.bindPort needs options.bindAddress');
    }
    if (listenBacklog !== undefined) assertInteger('options.listenBacklog', listenBacklog, 0, 0x7fffffff);
    checkOptionalU32('options.mark', options.mark);
    checkOptionalBoolean('options.reuseAddr', options.reuseAddr);
    checkOptionalBoolean('options.reusePort', options.reusePort);
    checkOptionalBoolean('options.transparent', options.transparent);
    checkOptionalBoolean('options.v6Only', options.v6Only);
    return native.socketInNetns(this.fd, options);
  }

  /**
   * A net.Server on a socket bound and listening inside the namespace. The kernel socket
   * listens before this returns; Node emits 'listening' on the next tick.
   */
  listen(options: NetnsListenOptions, connectionListener?: (socket: net.Socket) => void): net.Server {
    assertObject('options', options);
    assertString('options.host', options.host);
    const family = familyOf('options.host', options.host);
    assertPort('options.port', options.port);
    const backlog = options.backlog ?? 511;
    assertInteger('options.backlog', backlog, 0, 0x7fffffff);
    const socketOptions: SocketInNetnsOptions = {
      family,
      bindAddress: options.host,
      bindPort: options.port,
      listenBacklog: backlog,
      reuseAddr: true,
    };
    if (options.mark !== undefined) socketOptions.mark = options.mark;
    if (options.reusePort !== undefined) socketOptions.reusePort = options.reusePort;
    if (options.transparent !== undefined) socketOptions.transparent = options.transparent;
    if (options.v6Only !== undefined) socketOptions.v6Only = options.v6Only;
    const fd = this.socket(socketOptions);
    try {
      const server = net.createServer(connectionListener);
      server.listen({ fd, backlog });
      return server;
    } catch (err) {
      native.close(fd);
      throw err;
    }
  }

  /**
   * A net.Socket connecting from inside the namespace; wait for its 'connect' event
   * (failures arrive as 'error', like net.connect).
   */
  connect(options: NetnsConnectOptions): net.Socket {
    assertObject('options', options);
    assertString('options.host', options.host);
    const family = familyOf('options.host', options.host);
    assertPort('options.port', options.port);
    const socketOptions: SocketInNetnsOptions = { family };
    if (options.localAddress !== undefined) {
      assertString('options.localAddress', options.localAddress);
      if (net.isIP(options.localAddress) !== family) {
        throw invalidArgument(`options.localAddress must be an IPv${family} literal like options.host, got ${JSON.stringify(options.localAddress)}`);
      }
      socketOptions.bindAddress = options.localAddress;
      socketOptions.bindPort = options.localPort ?? 0;
    } else if (options.localPort !== undefined) {
      throw invalidArgument('options.localPort needs options.localAddress');
    }
    if (options.mark !== undefined) socketOptions.mark = options.mark;
    if (options.transparent !== undefined) socketOptions.transparent = options.transparent;
    const fd = this.socket(socketOptions);
    let socket: net.Socket;
    try {
      socket = new net.Socket({ fd, readable: true, writable: true });
    } catch (err) {
      native.close(fd);
      throw err;
    }
    socket.connect({ host: options.host, port: options.port });
    return socket;
  }

  /** Closes the namespace fd (sockets created inside stay in the namespace). */
  close(): void {
    if (this.fdValue === undefined) return;
    const fd = this.fdValue;
    this.fdValue = undefined;
    native.close(fd);
  }
}
