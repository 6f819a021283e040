import { createServer, Socket, type AddressInfo, type Server } from 'node:net';
import type { PodNetwork, SocketAddress } from '../datapath/pod-network';

/**
 * A stand-in for a pod's network namespace in unit tests, with no root: listeners on
 * loopback at a free port (whatever port the proxy asks for; `portFor` says which one it
 * got), plain connections, and the original destination the test says capture recorded.
 */
export class LoopbackNetwork implements PodNetwork {
  readonly ipv6 = false;
  /** What SO_ORIGINAL_DST answers for the next accepted connections; undefined: unanswered. */
  original: SocketAddress | undefined;
  private readonly listening = new Map<number, Server>();

  async listen(options: { family: 4 | 6; address: string; port: number }): Promise<Server> {
    const server = createServer({ allowHalfOpen: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: 0 }, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
    this.listening.set(options.port, server);
    return server;
  }

  /** The loopback port standing in for the port the proxy asked for (15001...). */
  portFor(requested: number): number {
    const server = this.listening.get(requested);
    if (!server) throw new Error(`nothing listens for port ${requested}`);
    return (server.address() as AddressInfo).port;
  }

  connect(options: { family: 4 | 6; address: string; port: number; timeoutMs: number }): Socket {
    const socket = new Socket({ allowHalfOpen: true });
    const timer = setTimeout(() => socket.destroy(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' })), options.timeoutMs);
    socket.once('connect', () => clearTimeout(timer));
    socket.once('close', () => clearTimeout(timer));
    socket.connect({ host: options.address, port: options.port });
    return socket;
  }

  originalDestination(): SocketAddress | undefined {
    return this.original;
  }
}
