import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { readableSource } from './body-adapters';
import type { DownstreamExchange, RequestBody } from './exchange';
import { requestHeaders, single, type HeaderRecord } from './headers';

/**
 * A downstream HTTP/2 (h2c, gRPC) request of Node's http2 compatibility API as a
 * DownstreamExchange. An HTTP/2 request has a body unless it is a GET or HEAD (END_STREAM
 * on its HEADERS cannot be seen through this API), so every other method streams one.
 */
export class H2Exchange implements DownstreamExchange {
  readonly method: string;
  readonly path: string;
  readonly authority: string;
  readonly headers: HeaderRecord;
  readonly protocol = 'h2' as const;
  readonly contentLength: number | undefined;
  readonly body: RequestBody;
  private bytes = 0;

  constructor(req: Http2ServerRequest, private readonly res: Http2ServerResponse) {
    const { headers, authority } = requestHeaders(req.headers);
    this.method = req.method ?? 'GET';
    this.path = req.url ?? '/';
    this.authority = authority;
    this.headers = headers;
    const length = Number(single(req.headers['content-length']) ?? NaN);
    this.contentLength = Number.isFinite(length) ? length : undefined;
    const none = this.method === 'GET' || this.method === 'HEAD' || this.contentLength === 0;
    if (none) {
      this.body = undefined;
      req.resume();
    } else {
      const source = readableSource(req, () => {
        const t = req.trailers as HeaderRecord | undefined;
        return t && Object.keys(t).length > 0 ? t : undefined;
      });
      // Counted as it flows: a 'data' listener of our own would start the stream before
      // the pipeline is attached, and lose what arrives in between.
      this.body = {
        ...source,
        start: (sink) => source.start({
          write: (c) => { this.bytes += c.length; return sink.write(c); },
          end: (t) => sink.end(t),
          fail: (e) => sink.fail(e),
        }),
      };
    }
  }

  get bodyBytesRead(): number {
    return this.bytes;
  }

  get headersSent(): boolean {
    return this.res.headersSent;
  }

  get closed(): boolean {
    return this.res.destroyed || (this.res.stream?.destroyed ?? true);
  }

  writeHead(status: number, headers: HeaderRecord): void {
    this.res.writeHead(status, headers as Record<string, string | string[]>);
  }

  write(chunk: Buffer): boolean {
    return this.res.write(chunk);
  }

  onDrain(fn: () => void): void {
    this.res.once('drain', fn);
  }

  end(trailers?: HeaderRecord): void {
    if (trailers && Object.keys(trailers).length > 0) this.res.addTrailers(trailers as Record<string, string>);
    this.res.end();
  }

  destroy(): void {
    this.res.destroy();
  }

  onClose(fn: () => void): void {
    this.res.once('close', () => {
      if (!this.res.writableFinished) fn();
    });
  }
}
