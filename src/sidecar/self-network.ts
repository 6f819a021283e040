import { createServer, Socket, type Server } from 'node:net';
import type { PodSandbox } from '../datapath/pod-sandbox';
import { OWN_NETNS } from '../capture/iptables/iptables-capture';
import type { NativeBinding } from '../datapath/native-binding';
import { openPodSandbox } from '../datapath/netns-pod-sandbox';
import { hasCode } from '../errors';
import { handleFd, type PodNetwork, type SocketAddress } from '../datapath/pod-network';

const LISTEN_BACKLOG = 4096;
const UNANSWERED = ['ENOENT', 'ENOPROTOOPT', 'ENOTCONN'];

/** The addon functions this network uses: both work on any socket of the process, unprivileged. */
export type OriginalDstBinding = Pick<NativeBinding, 'getOriginalDst' | 'localAddress'>;

/**
 * The sidecar's own network namespace, without privileges: plain Node sockets, no setns
 * and no SO_MARK (both need capabilities the injected sidecar container does not have).
 * Loop avoidance then rests on the iptables rule for the proxy's uid (`excludeUid`,
 * `-m owner --uid-owner 1337 -j RETURN`), as with Istio's sidecars. SO_ORIGINAL_DST comes
 * from the addon, which reads it from conntrack for any socket of the process.
 */
export class SelfNetwork implements PodNetwork {
  readonly ipv6: boolean;

  constructor(private readonly bpf: OriginalDstBinding, options: { ipv6: boolean }) {
    this.ipv6 = options.ipv6;
  }

  listen(options: { family: 4 | 6; address: string; port: number }): Promise<Server> {
    const server = createServer({ allowHalfOpen: true });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: options.address, port: options.port, backlog: LISTEN_BACKLOG, ipv6Only: options.family === 6 }, () => {
        server.removeListener('error', reject);
        resolve(server);
      });
    });
  }

  connect(options: { family: 4 | 6; address: string; port: number; bindAddress?: string; timeoutMs: number }): Socket {
    const socket = new Socket({ allowHalfOpen: true });
    const timer = setTimeout(() => {
      socket.destroy(Object.assign(new Error(`connect to ${options.address}:${options.port} timed out after ${options.timeoutMs} ms`), { code: 'ETIMEDOUT' }));
    }, options.timeoutMs);
    socket.once('connect', () => clearTimeout(timer));
    socket.once('close', () => clearTimeout(timer));
    socket.connect({ host: options.address, port: options.port, family: options.family, ...(options.bindAddress ? { localAddress: options.bindAddress } : {}) });
    return socket;
  }

  originalDestination(socket: Socket, listenerPort: number): SocketAddress | undefined {
    const fd = handleFd(socket);
    try {
      const od = this.bpf.getOriginalDst(fd);
      if (od.port !== listenerPort) return od;
    } catch (err) {
      if (!UNANSWERED.some((code) => hasCode(err, code))) throw err;
    }
    const local = this.bpf.localAddress(fd);
    return local.port === listenerPort ? undefined : local;
  }
}

/** Whether the namespace has a usable IPv6 loopback (disable_ipv6 removes ::1). */
export async function probeOwnIPv6(): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen({ host: '::1', port: 0, ipv6Only: true }, () => server.close(() => resolve(true)));
  });
}

/** The sidecar's network: a marking sandbox when privileged, else plain sockets. */
export interface OwnNetwork {
  network: PodNetwork;
  /** Present when the sidecar can also connect as the app (for the capture self-test). */
  sandbox?: PodSandbox;
  loopAvoidance: 'mark' | 'uid';
  /** Why this one, for the log. */
  reason: string;
}

/**
 * Opens the process's own network namespace the way the agent opens a pod's: setns +
 * SO_MARK through the addon (root, or CAP_SYS_ADMIN and CAP_NET_ADMIN: the simulator).
 * Without those privileges (the injected container: uid 1337, no capabilities) it falls
 * back to SelfNetwork, whose loops the iptables uid rule prevents.
 */
export async function openOwnNetwork(bpf: NativeBinding, mark: number): Promise<OwnNetwork> {
  let sandbox: PodSandbox | undefined;
  try {
    sandbox = await openPodSandbox(bpf, OWN_NETNS, mark);
    // SO_MARK needs CAP_NET_ADMIN: a marked listener proves it (setns already worked).
    const probe = await sandbox.listen({ family: 4, address: '127.0.0.1', port: 0 });
    probe.close();
    return { network: sandbox, sandbox, loopAvoidance: 'mark', reason: 'setns and SO_MARK are allowed: proxy sockets carry the mark' };
  } catch (err) {
    sandbox?.close();
    if (!hasCode(err, 'EPERM')) throw err;
    return {
      network: new SelfNetwork(bpf, { ipv6: await probeOwnIPv6() }),
      loopAvoidance: 'uid',
      reason: `no privilege for setns/SO_MARK (${(err as Error).message}): plain sockets; the iptables rule for the proxy's uid keeps them uncaptured`,
    };
  }
}
