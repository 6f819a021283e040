import type { Socket } from 'node:net';

export interface RelayResult {
  /** Bytes from the downstream (connecting) side to the upstream. */
  bytesUp: number;
  /** Bytes from the upstream back to the downstream side. */
  bytesDown: number;
  durationMs: number;
  /** The first error on either side, if any. */
  error?: Error;
}

/**
 * Copies bytes both ways between a client socket and its upstream (a socket, or a tunnel
 * stream) until both directions are done.
 *
 * - Back-pressure: pipe() pauses the reader while the writer's buffer is full, so a slow
 *   reader on one side never makes the proxy buffer without bound.
 * - Half-close: both sockets use allowHalfOpen, and an end on one side becomes an end (FIN)
 *   on the other while the opposite direction keeps flowing.
 * - Errors: a reset or failure on one side resets the other (not a clean FIN), so the
 *   peer sees the failure instead of a truncated but seemingly complete stream.
 */
export function relay(downstream: Socket, upstream: Socket): Promise<RelayResult> {
  const started = process.hrtime.bigint();
  return new Promise((resolve) => {
    let firstError: Error | undefined;
    let closed = 0;
    const onError = (source: Socket, other: Socket) => (err: Error) => {
      firstError ??= err;
      source.destroy();
      // A tunnel stream (the upstream may be one) has no TCP reset: it is destroyed with the error.
      if (!other.destroyed) {
        if (typeof other.resetAndDestroy === 'function') other.resetAndDestroy();
        else other.destroy(err);
      }
    };
    const onClose = () => {
      closed += 1;
      if (closed < 2) return;
      resolve({
        // Counted on the downstream socket: the upstream may be a tunnel stream, which
        // counts no bytes (every byte read from the client is piped up).
        bytesUp: downstream.bytesRead,
        bytesDown: downstream.bytesWritten,
        durationMs: Number(process.hrtime.bigint() - started) / 1e6,
        ...(firstError ? { error: firstError } : {}),
      });
    };
    downstream.on('error', onError(downstream, upstream));
    upstream.on('error', onError(upstream, downstream));
    downstream.once('close', onClose);
    upstream.once('close', onClose);
    // A socket whose both directions have ended is finished; destroy it so 'close' fires
    // even when the peer keeps its end open.
    for (const s of [downstream, upstream]) {
      let readEnded = false;
      let writeFinished = false;
      const maybeDone = () => { if (readEnded && writeFinished) s.destroy(); };
      s.once('end', () => { readEnded = true; maybeDone(); });
      s.once('finish', () => { writeFinished = true; maybeDone(); });
    }
    downstream.pipe(upstream);
    upstream.pipe(downstream);
    downstream.resume();
  });
}
