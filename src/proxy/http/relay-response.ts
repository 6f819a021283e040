import { applyHeaderModifier, type RouteMatch } from '../../routing';
import type { Cancellation } from './cancellation';
import type { DownstreamExchange, UpstreamResponse } from './exchange';
import { responseHeaders, single, type HeaderRecord } from './headers';
import type { RequestState } from './request-state';

/** Removes grpc-status, grpc-message and grpc-status-details-bin from `headers` and returns them. */
function takeGrpcStatus(headers: HeaderRecord): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name of ['grpc-status', 'grpc-message', 'grpc-status-details-bin']) {
    const v = headers[name];
    if (v !== undefined) out[name] = v;
    delete headers[name];
  }
  return out;
}

/**
 * Writes the upstream's response to the client: the route's response header filter,
 * then the body with back-pressure both ways, then trailers. Resolves when the response
 * is over (ended, failed upstream: UC, or cancelled).
 */
export function relayResponse(ex: DownstreamExchange, up: UpstreamResponse, match: RouteMatch | undefined, state: RequestState, cancel: Cancellation): Promise<void> {
  const headers = up.endToEnd ? up.headers : (responseHeaders(up.headers) as HeaderRecord);
  if (match?.responseHeaderModifier) applyHeaderModifier(headers, match.responseHeaderModifier);
  state.responseCode = up.status;
  const grpcHeader = single(up.headers['grpc-status']);
  if (grpcHeader !== undefined) state.grpcStatus = Number(grpcHeader);
  // A gRPC "Trailers-Only" response (one HEADERS frame carrying grpc-status, END_STREAM)
  // cannot be written as such through the compatibility API, which always sends the
  // response headers first: send its status as trailers, which gRPC clients read the
  // same way (they ignore a grpc-status in the leading headers without END_STREAM).
  const isGrpc = String(single(up.headers['content-type']) ?? '').startsWith('application/grpc');
  const trailersOnly = grpcHeader !== undefined && isGrpc ? takeGrpcStatus(headers) : undefined;
  ex.writeHead(up.status, headers);
  const body = up.body;
  if (!body) {
    ex.end(trailersOnly as HeaderRecord | undefined);
    return Promise.resolve();
  }
  return new Promise<void>((resolve) => {
    let done = false;
    const off = cancel.onCancel(() => {
      if (done) return;
      done = true;
      body.destroy();
      ex.destroy();
      resolve();
    });
    body.start({
      write(chunk) {
        state.responseBytes += chunk.length;
        // Back-pressure: stop reading upstream while the client is slow.
        const ok = ex.write(chunk);
        if (!ok && !ex.closed) ex.onDrain(() => body.resume());
        return ok;
      },
      end(trailers) {
        if (done) return;
        done = true;
        off();
        const gs = trailers ? single(trailers['grpc-status']) : undefined;
        if (gs !== undefined) state.grpcStatus = Number(gs);
        const out = trailersOnly || trailers ? { ...trailersOnly, ...(trailers ? responseHeaders(trailers) as HeaderRecord : undefined) } : undefined;
        ex.end(out);
        resolve();
      },
      fail() {
        if (done) return;
        done = true;
        off();
        state.flags.push('UC');
        ex.destroy();
        resolve();
      },
    });
  });
}
