import type { HeaderRecord } from './headers';

/**
 * The shapes the L7 pipeline works with, whatever the protocol on either side: the
 * downstream's request and its response channel, an upstream's response, and bodies that
 * flow between them with back-pressure. HTTP/1.1 has its own codec on raw sockets
 * (src/proxy/h1); HTTP/2 is adapted from Node's http2 (h2-exchange.ts, body-adapters.ts).
 */

/** Receives body bytes. `write` returning false asks the source to pause until `resume`. */
export interface BodySink {
  write(chunk: Buffer): boolean;
  /** The body ended; trailers when the protocol carried any. */
  end(trailers: HeaderRecord | undefined): void;
  /** The body broke off (connection reset, framing error): the message is incomplete. */
  fail(err: Error): void;
}

/** A body that is still arriving. Started once; bytes flow into the sink until end or fail. */
export interface BodySource {
  start(sink: BodySink): void;
  /** Continues after the sink's write returned false. */
  resume(): void;
  /** Stops and drops the rest; the connection under it is not reused. */
  destroy(err?: Error): void;
  /** Reads and drops the rest (a response nobody wants, e.g. before a retry). */
  discard(): void;
}

/** A request body: none, whole (can be re-sent for retries and mirrors), or streaming. */
export type RequestBody = Buffer | BodySource | undefined;

/** The downstream request, with its end-to-end headers (hop-by-hop ones removed). */
export interface DownstreamRequest {
  readonly method: string;
  readonly path: string;
  readonly authority: string;
  /** Mutable: the pipeline adds x-request-id, traceparent and filter changes. */
  readonly headers: HeaderRecord;
  readonly protocol: 'http1' | 'h2';
  /** The body's length when the downstream declared it. */
  readonly contentLength: number | undefined;
  readonly body: RequestBody;
  /** Body bytes read from the downstream so far (grows while a streamed body flows). */
  readonly bodyBytesRead: number;
}

/** Where the response goes. One per request. */
export interface DownstreamResponder {
  readonly headersSent: boolean;
  /** The client went away or the response was cut. */
  readonly closed: boolean;
  /** Sets the status and headers; they go out with the first body bytes or `end`. */
  writeHead(status: number, headers: HeaderRecord): void;
  /** False: the client is slow; wait for `onDrain` before writing more. */
  write(chunk: Buffer): boolean;
  onDrain(fn: () => void): void;
  end(trailers?: HeaderRecord): void;
  /** Cuts the response (the client sees a reset or a truncated body). */
  destroy(): void;
  /** Called once if the client goes away before the response has ended. */
  onClose(fn: () => void): void;
}

export interface DownstreamExchange extends DownstreamRequest, DownstreamResponder {}

/** An upstream's answer, the same for HTTP/1.1 and HTTP/2 upstreams. */
export interface UpstreamResponse {
  status: number;
  headers: HeaderRecord;
  /** The headers are end-to-end already (no hop-by-hop, no pseudo-headers) and the pipeline's to change. */
  endToEnd?: boolean;
  /** undefined: the response has no body (HEAD, 204, 304, or an HTTP/2 END_STREAM). */
  body: BodySource | undefined;
}
