import { headersFromList } from '../http/headers';
import { ChunkedDecoder } from './chunked-decoder';
import type { PushedBody } from './pushed-body';

/**
 * Reads one body off an HTTP/1.1 connection by its framing (chunked, or a known length;
 * Infinity: until the connection closes) into a PushedBody. The same for a request body
 * on the server side and a response body on the client side.
 */
export class BodyReader {
  private remaining: number;
  private readonly decoder: ChunkedDecoder | undefined;
  /** Once `feed` has returned true: the bytes that followed the body in the last chunk. */
  rest: Buffer | undefined;

  constructor(readonly sink: PushedBody, chunked: boolean, length: number) {
    this.decoder = chunked ? new ChunkedDecoder() : undefined;
    this.remaining = chunked ? Infinity : length;
  }

  /** Feeds the next bytes; true when the body is complete. Throws H1ParseError on bad chunked framing. */
  feed(chunk: Buffer): boolean {
    if (this.decoder) {
      const used = this.decoder.push(chunk, this.onData);
      if (!this.decoder.done) return false;
      this.rest = used < chunk.length ? chunk.subarray(used) : undefined;
      return true;
    }
    if (chunk.length < this.remaining) {
      this.remaining -= chunk.length;
      this.sink.push(chunk);
      return false;
    }
    const whole = chunk.length === this.remaining;
    const last = whole ? chunk : chunk.subarray(0, this.remaining);
    this.rest = whole ? undefined : chunk.subarray(this.remaining);
    this.remaining = 0;
    if (last.length > 0) this.sink.push(last);
    return true;
  }

  /** A body without framing, which ends when the connection does. */
  get untilClose(): boolean {
    return this.decoder === undefined && this.remaining === Infinity;
  }

  /** Ends the sink's body, with the trailers a chunked body carried. */
  finish(): void {
    const t = this.decoder?.trailers;
    this.sink.finish(t && t.length > 0 ? headersFromList(t, []) : undefined);
  }

  private readonly onData = (data: Buffer): void => this.sink.push(data);
}
