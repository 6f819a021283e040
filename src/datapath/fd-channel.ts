import { createServer, Socket, type Server } from 'node:net';
import { NodemeshError, hasCode } from '../errors';
import { native } from './native';
import { fdOf } from './fd';
import { listenAtSharedPath, removeIfOwn } from '../util/unix-socket-path';

/** SCM_MAX_FD is 253; batches stay below it. */
export const MAX_FDS_PER_MESSAGE = 240;

/** One message of a channel: a JSON value and the descriptors that came with it (now ours). */
export interface ChannelMessage<T> {
  message: T;
  fds: number[];
}

/**
 * A unix stream socket carrying JSON messages with file descriptors (SCM_RIGHTS, through
 * the addon). Every send and receive has a deadline and runs off the JS thread. Exactly
 * one send and one receive may be outstanding at a time (the hand-over is a dialogue).
 */
export class FdChannel {
  private fdValue: number | undefined;

  private constructor(fd: number) {
    this.fdValue = fd;
  }

  /** Connects to a listening channel; undefined when nobody listens at `path`. */
  static connect(path: string): FdChannel | undefined {
    try {
      return new FdChannel(native.unixConnect(path));
    } catch (err) {
      if (hasCode(err, 'ENOENT') || hasCode(err, 'ECONNREFUSED')) return undefined;
      throw err;
    }
  }

  /** Takes over the descriptor of a unix socket Node accepted (paused), and lets go of the Node object. */
  static fromSocket(socket: Socket): FdChannel {
    const fd = native.dupFd(fdOf(socket));
    socket.destroy();
    return new FdChannel(fd);
  }

  get closed(): boolean {
    return this.fdValue === undefined;
  }

  private get fd(): number {
    if (this.fdValue === undefined) throw new NodemeshError('ERR_NM_CLOSED', 'the hand-over channel is closed');
    return this.fdValue;
  }

  send(message: unknown, fds: readonly number[], timeoutMs: number): Promise<void> {
    if (fds.length > MAX_FDS_PER_MESSAGE) throw new NodemeshError('ERR_NM_INVALID_ARGUMENT', `at most ${MAX_FDS_PER_MESSAGE} descriptors per message, got ${fds.length}`);
    return native.fdChannelSend(this.fd, Buffer.from(JSON.stringify(message)), [...fds], timeoutMs);
  }

  /** The next message; undefined at a clean end of stream (the peer closed between messages). */
  async recv<T>(timeoutMs: number): Promise<ChannelMessage<T> | undefined> {
    const { eof, data, fds } = await native.fdChannelRecv(this.fd, timeoutMs);
    if (eof) return undefined;
    try {
      return { message: JSON.parse(data.toString('utf8')) as T, fds };
    } catch (err) {
      closeFds(fds);
      throw new NodemeshError('ERR_NM_HANDOVER_PROTOCOL', 'a hand-over message is not JSON', { cause: err, hint: 'both agents must be nodemesh versions that hand over' });
    }
  }

  close(): void {
    const fd = this.fdValue;
    this.fdValue = undefined;
    if (fd !== undefined) native.close(fd);
  }
}

/** Closes descriptors nobody will own (a message refused, a hand-over abandoned). */
export function closeFds(fds: Iterable<number>): void {
  for (const fd of fds) {
    try {
      native.close(fd);
    } catch {
      // already closed: nothing to release
    }
  }
}

/** A close-on-exec duplicate: keeps a socket alive after the Node object owning it closed. */
export function dupFd(fd: number): number {
  return native.dupFd(fd);
}

/**
 * Listens for channels at `path` (a stale socket file, or the previous agent's, is replaced). Each accepted
 * connection is paused before Node reads a byte, then handed to `onChannel` as a channel.
 */
export async function listenFdChannels(path: string, onChannel: (channel: FdChannel) => void): Promise<{ close(): void; disown(): void }> {
  const server = createServer({ pauseOnConnect: true }, (socket) => onChannel(FdChannel.fromSocket(socket)));
  const id = await listenAtSharedPath(server, path);
  let closed = false;
  let owned = true;
  return {
    close: () => {
      // Once: a second call could find the successor's file at the path by then.
      if (closed) return;
      closed = true;
      server.close();
      // A successor that took over has its own socket there: only ours is removed.
      if (owned) removeIfOwn(path, id);
    },
    /**
     * A successor took over: the path is its own now, whatever is there. (Checking the
     * file and removing it are two steps: the successor's rename can fall between them.)
     */
    disown: () => {
      owned = false;
    },
  };
}

/** The local port of a socket descriptor (a received listener is checked against what it claims to be). */
export function localPort(fd: number): number {
  return native.localAddress(fd).port;
}

/** A connected TCP socket from a received descriptor (Node makes it non-blocking). */
export function socketFromFd(fd: number): Socket {
  return new Socket({ fd, allowHalfOpen: true, readable: true, writable: true });
}

/** A listening server from a received descriptor of a listening TCP socket. */
export function serverFromFd(fd: number, backlog: number): Promise<Server> {
  const server = createServer({ allowHalfOpen: true });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd, backlog }, () => resolve(server));
  });
}

interface ReadableHandle {
  reading?: boolean;
  readStop?(): number;
  readStart?(): number;
}

/**
 * Stops a socket reading from the kernel, for good until `resumeReading`: libuv's read is
 * stopped and the stream's `_read` cannot restart it, so bytes the peer sends from now
 * stay in the kernel socket (and travel with its descriptor). Node's own pause() only
 * stops delivery; the handle would go on reading into the stream's buffer.
 */
export function stopReading(socket: Socket): void {
  const handle = (socket as unknown as { _handle?: ReadableHandle | null })._handle;
  (socket as unknown as { _read: (n: number) => void })._read = () => undefined;
  if (handle?.readStop) {
    handle.reading = false;
    handle.readStop();
  }
}

/** Undoes `stopReading`: the stream reads from the kernel again. */
export function resumeReading(socket: Socket): void {
  delete (socket as unknown as { _read?: unknown })._read;
  const handle = (socket as unknown as { _handle?: ReadableHandle | null })._handle;
  if (!socket.destroyed && handle?.readStart && !handle.reading) {
    handle.reading = true;
    handle.readStart();
  }
}
