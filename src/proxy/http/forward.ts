import { constants as h2c, type IncomingHttpHeaders as H2Headers } from 'node:http2';
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { H2Sessions } from '../upstream/h2-sessions';
import type { Http1Pools } from '../upstream/http1-pools';
import type { UpstreamTransport } from '../upstream/transport';
import type { HeaderRecord } from './headers';

/** An upstream response, the same for HTTP/1.1 and HTTP/2 upstreams. */
export interface UpstreamResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Readable;
  /** Resolves with the trailers once the body has ended ({} when none). */
  trailers: Promise<Record<string, string | string[] | undefined>>;
}

export interface AttemptRequest {
  method: string;
  path: string;
  authority: string;
  headers: HeaderRecord;
  /** A buffered body (re-sendable, for retries and mirrors), or the live stream. */
  body: Buffer | Readable | undefined;
  signal: AbortSignal;
}

/** One attempt over HTTP/1.1 (undici pool). */
export async function forwardHttp1(pools: Http1Pools, transport: UpstreamTransport, address: string, port: number, req: AttemptRequest): Promise<UpstreamResponse> {
  const pool = pools.get(transport, address, port);
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && k !== 'te') headers[k] = v;
  if (req.authority) headers['host'] = req.authority;
  const res: Dispatcher.ResponseData = await pool.request({
    method: req.method as Dispatcher.HttpMethod,
    path: req.path,
    headers,
    body: req.body ?? null,
    signal: req.signal,
    headersTimeout: 0,
    bodyTimeout: 0,
  });
  const trailers = new Promise<Record<string, string | string[] | undefined>>((resolve) => {
    res.body.once('end', () => resolve({ ...res.trailers }));
    res.body.once('close', () => resolve({ ...res.trailers }));
  });
  return { status: res.statusCode, headers: res.headers, body: res.body, trailers };
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
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers[k] = v;
  const stream = session.request(headers, { endStream: req.body === undefined || (Buffer.isBuffer(req.body) && req.body.length === 0), signal: req.signal });
  if (Buffer.isBuffer(req.body)) { if (req.body.length > 0) stream.end(req.body); }
  else if (req.body) req.body.pipe(stream);
  const trailers = new Promise<Record<string, string | string[] | undefined>>((resolve) => {
    let got: Record<string, string | string[] | undefined> = {};
    stream.once('trailers', (t: H2Headers) => { got = t as Record<string, string | string[] | undefined>; });
    stream.once('close', () => resolve(got));
  });
  return new Promise((resolve, reject) => {
    stream.once('response', (h: H2Headers) => {
      resolve({ status: Number(h[h2c.HTTP2_HEADER_STATUS] ?? 0), headers: h as Record<string, string | string[] | undefined>, body: stream, trailers });
    });
    stream.once('error', reject);
  });
}
