import { constants as h2c, type ClientHttp2Stream, type IncomingHttpHeaders as H2Headers } from 'node:http2';
import { NodemeshError } from '../../errors';
import type { H2Sessions } from '../upstream/h2-sessions';
import type { Http1Pools } from '../upstream/http1-pools';
import type { UpstreamTransport } from '../upstream/transport';
import { pumpInto, readableSource } from './body-adapters';
import type { Cancellation } from './cancellation';
import type { RequestBody, UpstreamResponse } from './exchange';
import type { HeaderRecord } from './headers';
import { formatHostPort } from '../../util/host-port';

export interface AttemptRequest {
  method: string;
  path: string;
  authority: string;
  headers: HeaderRecord;
  /** A buffered body (re-sendable, for retries and mirrors), or the live stream. */
  body: RequestBody;
  contentLength: number | undefined;
  cancel: Cancellation;
}

/** One attempt over HTTP/1.1 (the proxy's own keep-alive pools). */
export function forwardHttp1(pools: Http1Pools, transport: UpstreamTransport, address: string, port: number, req: AttemptRequest): Promise<UpstreamResponse> {
  const pool = pools.get(transport, address, port);
  let headers = req.headers;
  if (headers['te'] !== undefined) {
    headers = { ...headers };
    delete headers['te'];
  }
  return pool.request({ method: req.method, path: req.path, authority: req.authority || formatHostPort(address, port), headers, body: req.body, contentLength: req.contentLength }, req.cancel);
}

/** One attempt over HTTP/2 (h2c / gRPC session, one stream). */
export async function forwardH2(sessions: H2Sessions, transport: UpstreamTransport, address: string, port: number, req: AttemptRequest): Promise<UpstreamResponse> {
  const session = await sessions.get(transport, address, port);
  const headers: Record<string, string | string[]> = {
    [h2c.HTTP2_HEADER_METHOD]: req.method,
    [h2c.HTTP2_HEADER_PATH]: req.path,
    [h2c.HTTP2_HEADER_SCHEME]: 'http',
    [h2c.HTTP2_HEADER_AUTHORITY]: req.authority || `${address}:${port}`,
  };
  for (const name in req.headers) {
    const v = req.headers[name];
    if (v !== undefined) headers[name] = v;
  }
  const body = req.body;
  let stream: ClientHttp2Stream;
  try {
    stream = session.request(headers, { endStream: body === undefined || (Buffer.isBuffer(body) && body.length === 0), signal: req.cancel.signal });
  } catch (err) {
    // The pooled session heard a GOAWAY (or closed) since it was handed out: nothing was
    // sent; the pool has forgotten it and the next attempt opens a new one.
    throw refusedStream(address, port, err);
  }
  if (Buffer.isBuffer(body)) {
    if (body.length > 0) stream.end(body);
  } else if (body) {
    pumpInto(body, stream);
  }
  let trailers: HeaderRecord | undefined;
  stream.once('trailers', (t: H2Headers) => { trailers = t as HeaderRecord; });
  return new Promise((resolve, reject) => {
    stream.once('response', (h: H2Headers, flags: number) => {
      const ended = (flags & h2c.NGHTTP2_FLAG_END_STREAM) !== 0;
      resolve({
        status: Number(h[h2c.HTTP2_HEADER_STATUS] ?? 0),
        headers: h as HeaderRecord,
        body: ended ? undefined : readableSource(stream, () => trailers),
      });
    });
    // 'on', not 'once': a reset stream can report more than one error (a write after it).
    stream.on('error', (err) => reject(stream.rstCode === h2c.NGHTTP2_REFUSED_STREAM ? refusedStream(address, port, err) : err));
    // Closed before an answer without an error (the session destroyed at a drain's
    // deadline): fail now rather than wait for a timeout that may not be configured.
    stream.once('close', () => reject(stream.rstCode === h2c.NGHTTP2_REFUSED_STREAM
      ? refusedStream(address, port)
      : new NodemeshError('ERR_NM_UPSTREAM_STREAM_CLOSED', `the HTTP/2 stream to ${formatHostPort(address, port)} closed before it answered (code ${stream.rstCode ?? 0})`, {
        hint: 'the upstream (or the node proxy in front of it) reset the stream or went away; its logs say why',
      })));
  });
}

/**
 * A stream the peer never processed (RFC 9113 §8.7: REFUSED_STREAM, or one that could not
 * be opened on a session going away): safe to send again, like a connect failure.
 */
function refusedStream(address: string, port: number, cause?: unknown): NodemeshError {
  return new NodemeshError('ERR_NM_UPSTREAM_REFUSED_STREAM', `the HTTP/2 session to ${formatHostPort(address, port)} refused the stream before processing it`, {
    hint: 'the upstream was draining (GOAWAY); the request is retried on a new session when its body can be sent again',
    ...(cause !== undefined ? { cause } : {}),
  });
}
