import type { Server } from 'node:net';
import { closeFds, dupFd, localPort, serverFromFd } from '../../datapath/fd-channel';
import { fdOf } from '../../datapath/fd';

/** Which listener a descriptor is: the receiver puts each one where its own would be. */
export interface ListenerMeta {
  kind: 'outbound' | 'inbound' | 'tunnel' | 'health';
  /** The pod whose namespace the listener is in (none for the node's health port). */
  podKey?: string;
  podUid?: string;
  family: 4 | 6;
  port: number;
}

/** A listener on offer: its description and the descriptor to send (still owned by its server). */
export interface OfferedListener {
  meta: ListenerMeta;
  fd: number;
}

/**
 * Listeners received from a previous agent, waiting for the pod (or server) that will
 * use them. Whatever nobody took when the hand-over ends is closed (`closeRest`).
 */
export class InheritedListeners {
  private readonly waiting = new Map<string, number>();
  private readonly takenMetas: ListenerMeta[] = [];

  constructor(offers: ReadonlyArray<{ meta: ListenerMeta; fd: number }> = []) {
    for (const { meta, fd } of offers) this.waiting.set(keyOf(meta), fd);
  }

  /**
   * The received descriptor for this listener, once; undefined when none came or it is
   * not the socket it claims to be (another port: never adopt a wrong listener).
   */
  take(meta: ListenerMeta): number | undefined {
    const key = keyOf(meta);
    const fd = this.waiting.get(key);
    if (fd === undefined) return undefined;
    this.waiting.delete(key);
    try {
      if (localPort(fd) !== meta.port) throw new Error('port differs');
    } catch {
      closeFds([fd]);
      return undefined;
    }
    this.takenMetas.push(meta);
    return fd;
  }

  /** The listeners adopted so far. */
  get adopted(): readonly ListenerMeta[] {
    return this.takenMetas;
  }

  get pending(): number {
    return this.waiting.size;
  }

  closeRest(): void {
    closeFds(this.waiting.values());
    this.waiting.clear();
  }
}

function keyOf(m: ListenerMeta): string {
  return `${m.kind}|${m.podKey ?? ''}|${m.podUid ?? ''}|${m.family}|${m.port}`;
}

/**
 * A listener this agent stopped accepting on while the next one takes over: the server
 * is closed but a duplicate descriptor keeps the kernel socket (and its sockhash entries)
 * alive, so the listener can be taken back into use if the next agent dies half-way.
 */
export class PausedListener {
  private dup: number | undefined;

  private constructor(dup: number, private readonly backlog: number) {
    this.dup = dup;
  }

  static pause(server: Server, backlog: number): PausedListener {
    const paused = new PausedListener(dupFd(fdOf(server)), backlog);
    server.close();
    return paused;
  }

  /** A server accepting on the same kernel socket again. */
  async resume(): Promise<Server> {
    return serverFromFd(this.takeFd(), this.backlog);
  }

  /** The kept descriptor, now the caller's (to serve on it with a server of its own kind). */
  takeFd(): number {
    const fd = this.dup;
    if (fd === undefined) throw new Error('the paused listener was already resumed or released');
    this.dup = undefined;
    return fd;
  }

  /** The next agent has it: let go of the duplicate. */
  release(): void {
    if (this.dup !== undefined) closeFds([this.dup]);
    this.dup = undefined;
  }
}
