import type { BodySink, BodySource } from './exchange';
import type { HeaderRecord } from './headers';

/**
 * A streamed request body that can be sent again while its first bytes are still held.
 *
 * A streamed body (a gRPC call's messages, an upload without a length) is sent as it
 * arrives, so an attempt that fails takes what it read with it. Yet some failures happen
 * before the upstream processed anything (a refused HTTP/2 stream, a session that went
 * away between the pool and the request: RFC 9113 §8.7), and a retry then is safe, if the
 * bytes are still there. This keeps what it passes on (up to `max` bytes) until the
 * caller says the attempt was answered; `again()` then gives a source that replays the
 * kept bytes and carries on with the live rest. Beyond `max` it keeps nothing more, and
 * `again()` says no.
 */
export class RetainedBody {
  private readonly kept: Buffer[] = [];
  private keptBytes = 0;
  private retaining = true;
  private overflowed = false;
  private started = false;
  /** Where the live body goes now: the current attempt's sink, none between attempts. */
  private target: BodySink | undefined;
  private ended: { trailers: HeaderRecord | undefined } | undefined;
  private failed: Error | undefined;

  constructor(private readonly source: BodySource, private readonly max: number) {}

  /** The body of the first attempt. */
  first(): BodySource {
    return this.attemptSource();
  }

  /** The body of the next attempt (every byte so far, then the rest), or undefined when it cannot be whole. */
  again(): BodySource | undefined {
    if (!this.retaining || this.overflowed || this.failed) return undefined;
    this.target = undefined;
    return this.attemptSource();
  }

  /** The upstream answered: nothing will be sent again, keep nothing more. */
  answered(): void {
    this.retaining = false;
    this.kept.length = 0;
    this.keptBytes = 0;
  }

  private attemptSource(): BodySource {
    let started = false;
    return {
      start: (sink) => {
        if (started) throw new Error('body already started');
        started = true;
        this.target = sink;
        let ok = true;
        for (const chunk of this.kept) ok = sink.write(chunk) && ok;
        if (this.failed) sink.fail(this.failed);
        else if (this.ended) sink.end(this.ended.trailers);
        else if (!this.started) this.startSource();
        else if (ok) this.source.resume();
      },
      resume: () => this.source.resume(),
      destroy: (err) => this.source.destroy(err),
      discard: () => this.source.discard(),
    };
  }

  private startSource(): void {
    this.started = true;
    this.source.start({
      write: (chunk) => {
        if (this.retaining && !this.overflowed) {
          if (this.keptBytes + chunk.length > this.max) {
            this.overflowed = true;
            this.kept.length = 0;
            this.keptBytes = 0;
          } else {
            this.kept.push(chunk);
            this.keptBytes += chunk.length;
          }
        }
        // Between attempts: hold the source until the next attempt's sink starts.
        return this.target ? this.target.write(chunk) : false;
      },
      end: (trailers) => {
        this.ended = { trailers };
        this.target?.end(trailers);
      },
      fail: (err) => {
        this.failed = err;
        this.target?.fail(err);
      },
    });
  }
}
