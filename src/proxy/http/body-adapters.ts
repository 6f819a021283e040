import type { Readable, Writable } from 'node:stream';
import type { HeaderRecord } from './headers';
import type { BodySink, BodySource } from './exchange';

/**
 * A Node Readable (an HTTP/2 stream, a request of the http2 compatibility API) as a
 * BodySource. `trailers` is read when the stream ends.
 */
export function readableSource(stream: Readable, trailers?: () => HeaderRecord | undefined): BodySource {
  let started = false;
  return {
    start(sink: BodySink): void {
      if (started) throw new Error('body already started');
      started = true;
      let done = false;
      stream.on('data', (chunk: Buffer) => {
        if (!sink.write(chunk)) stream.pause();
      });
      const end = () => {
        if (done) return;
        done = true;
        sink.end(trailers?.());
      };
      if (stream.readableEnded) end();
      else stream.once('end', end);
      stream.once('error', (err: Error) => {
        if (done) return;
        done = true;
        sink.fail(err);
      });
      stream.once('close', () => {
        if (done) return;
        done = true;
        sink.fail(Object.assign(new Error('the stream closed before its end'), { code: 'ECONNRESET' }));
      });
      stream.resume();
    },
    resume: () => void stream.resume(),
    destroy: (err?: Error) => void stream.destroy(err),
    discard: () => void stream.resume(),
  };
}

/**
 * Sends a BodySource into a Writable (an HTTP/2 stream) with back-pressure; ends it, or
 * destroys it when the source fails.
 */
export function pumpInto(source: BodySource, out: Writable, trailersOut?: (t: HeaderRecord) => void): void {
  source.start({
    write(chunk) {
      const ok = out.write(chunk);
      if (!ok) out.once('drain', () => source.resume());
      return ok;
    },
    end(trailers) {
      if (trailers && trailersOut && Object.keys(trailers).length > 0) trailersOut(trailers);
      out.end();
    },
    fail(err) {
      out.destroy(err);
    },
  });
}

/**
 * Reads a streamed body whole, for retries and mirrors that must send it again. Beyond
 * `max` bytes it gives up keeping it: the result is then a source that replays what was
 * read and continues with the rest (sent once, no retries).
 */
export function collectBody(source: BodySource, max: number): Promise<Buffer | BodySource> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let handOver: BodySink | undefined;
    let overflowed = false;
    source.start({
      write(chunk) {
        if (handOver) return handOver.write(chunk);
        chunks.push(chunk);
        size += chunk.length;
        if (size > max && !overflowed) {
          overflowed = true;
          // Hold the source until the replaying consumer is attached.
          resolve(replay);
          return false;
        }
        return true;
      },
      end(trailers) {
        if (handOver) handOver.end(trailers);
        else if (overflowed) pendingEnd = { trailers };
        else resolve(Buffer.concat(chunks, size));
      },
      fail(err) {
        if (handOver) handOver.fail(err);
        else if (overflowed) pendingFail = err;
        else reject(err);
      },
    });
    let pendingEnd: { trailers: HeaderRecord | undefined } | undefined;
    let pendingFail: Error | undefined;
    const replay: BodySource = {
      start(sink) {
        handOver = sink;
        let ok = true;
        for (const c of chunks) ok = sink.write(c) && ok;
        chunks.length = 0;
        if (pendingFail) sink.fail(pendingFail);
        else if (pendingEnd) sink.end(pendingEnd.trailers);
        else if (ok) source.resume();
      },
      resume: () => source.resume(),
      destroy: (err) => source.destroy(err),
      discard: () => replay.start({ write: () => true, end: () => undefined, fail: () => undefined }),
    };
  });
}
