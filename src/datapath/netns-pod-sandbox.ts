import { createServer, Socket, type Server } from 'node:net';
import type { PodSandbox } from './pod-sandbox';
import { hasCode } from '../errors';
import { handleFd, type SocketAddress } from './pod-network';
import type { NativeBinding } from './native-binding';

const LISTEN_BACKLOG = 4096;

/** SO_ORIGINAL_DST said nothing: no capture hook recorded a destination for the socket. */
const UNANSWERED = ['ENOENT', 'ENOPROTOOPT', 'ENOTCONN'];

function timeoutError(address: string, port: number, ms: number): Error {
  return Object.assign(new Error(`connect to ${address}:${port} timed out after ${ms} ms`), { code: 'ETIMEDOUT' });
}

/**
 * A pod's network namespace, held open by fd. Sockets are created inside it by the addon
 * (setns on the calling thread and straight back), then owned by Node's `net` objects.
 */
class NetnsPodSandbox implements PodSandbox {
  readonly ipv6: boolean;

  constructor(
    private readonly bpf: NativeBinding,
    private readonly nsFd: number,
    readonly netnsPath: string,
    readonly netnsCookie: bigint,
    private readonly mark: number,
  ) {
    this.ipv6 = this.probeIPv6();
  }

  /** IPv6 is usable when ::1 can be bound (disable_ipv6 removes it). */
  private probeIPv6(): boolean {
    try {
      const fd = this.bpf.socketInNetns(this.nsFd, { family: 6, bindAddress: '::1', bindPort: 0 });
      this.bpf.close(fd);
      return true;
    } catch {
      return false;
    }
  }

  listen(options: { family: 4 | 6; address: string; port: number }): Promise<Server> {
    const fd = this.bpf.socketInNetns(this.nsFd, {
      family: options.family,
      bindAddress: options.address,
      bindPort: options.port,
      listenBacklog: LISTEN_BACKLOG,
      mark: this.mark,
      reuseAddr: true,
      v6Only: true,
    });
    const server = createServer({ allowHalfOpen: true });
    return new Promise((resolve, reject) => {
      server.once('error', (err) => {
        this.bpf.close(fd);
        reject(err);
      });
      server.listen({ fd, backlog: LISTEN_BACKLOG }, () => resolve(server));
    });
  }

  connect(options: { family: 4 | 6; address: string; port: number; bindAddress?: string; timeoutMs: number }): Socket {
    return this.open(options, true);
  }

  connectAsApp(options: { family: 4 | 6; address: string; port: number; timeoutMs: number }): Socket {
    return this.open(options, false);
  }

  private open(options: { family: 4 | 6; address: string; port: number; bindAddress?: string; timeoutMs: number }, marked: boolean): Socket {
    const fd = this.bpf.socketInNetns(this.nsFd, {
      family: options.family,
      ...(marked ? { mark: this.mark } : {}),
      ...(options.bindAddress ? { bindAddress: options.bindAddress, bindPort: 0 } : {}),
    });
    // manualStart: do not read from the socket before it is connected (Node would see
    // an unconnected socket hang up); connect() starts reading once connected.
    const socket = new Socket({ fd, allowHalfOpen: true, manualStart: true } as ConstructorParameters<typeof Socket>[0]);
    const timer = setTimeout(() => socket.destroy(timeoutError(options.address, options.port, options.timeoutMs)), options.timeoutMs);
    socket.once('connect', () => clearTimeout(timer));
    socket.once('close', () => clearTimeout(timer));
    socket.connect({ port: options.port, host: options.address });
    return socket;
  }

  originalDestination(socket: Socket, listenerPort: number): SocketAddress | undefined {
    const fd = handleFd(socket);
    try {
      const od = this.bpf.getOriginalDst(fd);
      // conntrack answers an un-NATed connection with its own local address.
      if (od.port !== listenerPort) return od;
    } catch (err) {
      if (!UNANSWERED.some((code) => hasCode(err, code))) throw err;
    }
    // sk_lookup steers without rewriting: the local address is the original destination.
    const local = this.bpf.localAddress(fd);
    return local.port === listenerPort ? undefined : local;
  }

  close(): void {
    this.bpf.close(this.nsFd);
  }
}

/** Opens a pod's network namespace. Rejects with code ENOENT when it does not exist. */
export async function openPodSandbox(bpf: NativeBinding, netnsPath: string, mark: number): Promise<PodSandbox> {
  const fd = bpf.netnsOpen(netnsPath);
  try {
    return new NetnsPodSandbox(bpf, fd, netnsPath, bpf.netnsCookie(fd), mark);
  } catch (err) {
    bpf.close(fd);
    throw err;
  }
}
