import type { Duplex } from 'node:stream';
import type { HeaderRecord } from '../http/headers';
import type { BodySink, BodySource } from '../http/exchange';

/** How a body holds back, lets go of, or ends the connection it arrives on. */
export interface Flow {
  pause(): void;
  resume(): void;
  destroy(err?: Error): void;
}

/**
 * The flow of a connection's socket (or tunnel stream). Destroying drops the body's error:
 * the body's consumer gets it; the socket's own listeners would take it for a socket error.
 */
export function flowOf(stream: Duplex): Flow {
  return {
    pause: () => stream.pause(),
    resume: () => stream.resume(),
    destroy: () => stream.destroy(),
  };
}

/**
 * A body an HTTP/1.1 connection decodes as it arrives (a streamed request body, or an
 * upstream's response body): bytes are pushed here and reach the consumer's sink, with
 * back-pressure through `pause`/`resume` of the socket. Bytes that arrive before the
 * consumer starts the body wait in a short queue (the socket pauses beyond it).
 */
export class PushedBody implements BodySource {
  private sink: BodySink | undefined;
  private queue: Buffer[] | undefined = [];
  private ended: { trailers: HeaderRecord | undefined } | undefined;
  private failed: Error | undefined;
  private settled = false;
  /** The flow is paused because nobody reads yet (the queue is full). */
  private held = false;
  bytes = 0;

  constructor(private readonly flow: Flow) {}

  /** From the connection: decoded body bytes. */
  push(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.sink) {
      if (!this.sink.write(chunk)) this.flow.pause();
      return;
    }
    this.queue!.push(chunk);
    // Nobody reads yet: hold the socket rather than buffer without bound.
    if (this.queue!.length > 16 && !this.held) {
      this.held = true;
      this.flow.pause();
    }
  }

  /** From the connection: the body is complete. */
  finish(trailers: HeaderRecord | undefined): void {
    if (this.sink) this.settle(() => this.sink!.end(trailers));
    else {
      this.ended = { trailers };
      // No more bytes of this body will come: the pause for its queue must not hold the
      // connection, whose next message (a request, a response) follows. start() does not
      // resume a complete body, and a body nobody starts (answered without reading) never would.
      if (this.held) {
        this.held = false;
        this.flow.resume();
      }
    }
  }

  /** From the connection: the body broke off. */
  abort(err: Error): void {
    if (this.sink) this.settle(() => this.sink!.fail(err));
    else this.failed = err;
  }

  get complete(): boolean {
    return this.settled || this.ended !== undefined;
  }

  start(sink: BodySink): void {
    if (this.sink) throw new Error('body already started');
    this.sink = sink;
    this.held = false;
    const queued = this.queue!;
    this.queue = undefined;
    let ok = true;
    for (const chunk of queued) ok = sink.write(chunk) && ok;
    if (this.failed) this.settle(() => sink.fail(this.failed!));
    else if (this.ended) this.settle(() => sink.end(this.ended!.trailers));
    else if (ok) this.flow.resume();
    else this.flow.pause();
  }

  resume(): void {
    this.flow.resume();
  }

  destroy(err?: Error): void {
    this.flow.destroy(err);
  }

  discard(): void {
    if (this.sink) return;
    this.start({ write: () => true, end: () => undefined, fail: () => undefined });
  }

  private settle(fn: () => void): void {
    if (this.settled) return;
    this.settled = true;
    fn();
  }
}
