import { constants as h2c } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { Cancellation } from '../http/cancellation';
import type { BodySource, RequestBody, UpstreamResponse } from '../http/exchange';
import { headersFromList, type HeaderRecord } from '../http/headers';
import { BodyReader } from './body-reader';
import { findHeadEnd, parseResponseHead } from './head-parser';
import { H1ParseError } from './parse-error';
import { PushedBody, flowOf } from './pushed-body';
import { appendHeaders, chunkHeader, lastChunk, writeHeadAndBody } from './serialize';

/** How a kept-alive connection the server has just closed fails a request written to it. */
const STALE_CODES = new Set(['ECONNRESET', 'EPIPE']);

/** Largest response head accepted from an upstream. */
const MAX_RESPONSE_HEAD = 64 * 1024;

export interface H1UpstreamRequest {
  method: string;
  path: string;
  authority: string;
  /** End-to-end headers; host and the body's framing are added here. */
  headers: HeaderRecord;
  body: RequestBody;
  /** The length of a streamed body, when known (else it is sent chunked). */
  contentLength?: number | undefined;
}

/** One request given to a connection, and how to answer its caller. */
export interface H1Job {
  req: H1UpstreamRequest;
  cancel: Cancellation | undefined;
  resolve(res: UpstreamResponse): void;
  reject(err: Error): void;
  /** Set once the request went out on a reused connection that then failed: one fresh try. */
  retried: boolean;
}

export interface ConnectionOwner {
  /** The connection finished a response and can take another request. */
  release(conn: H1ClientConnection): void;
  /** The connection is gone (closed, failed, cancelled). */
  dead(conn: H1ClientConnection): void;
  /** A reused connection failed before any response byte: send the job again on a new one. */
  retry(job: H1Job): void;
}

function connError(message: string, code: string, cause?: Error): Error {
  return Object.assign(new Error(message, cause ? { cause } : undefined), { code });
}

/**
 * One upstream HTTP/1.1 keep-alive connection over any byte stream (a socket made in a
 * pod's namespace, a tunnel stream): writes a request, parses the response strictly,
 * streams its body, and goes back to the pool when both directions are complete.
 */
export class H1ClientConnection {
  idleSince = 0;
  /** Requests completed on this connection (a failure on a reused one may be retried). */
  served = 0;
  private job: H1Job | undefined;
  private buf: Buffer | undefined;
  private scanFrom = 0;
  private body: BodyReader | undefined;
  private responded = false;
  private requestSent = false;
  private responseDone = false;
  private keepAlive = true;
  private offCancel: (() => void) | undefined;
  private gone = false;

  constructor(
    readonly stream: Duplex,
    private readonly owner: ConnectionOwner,
  ) {
    stream.on('data', this.onData);
    stream.on('end', this.onEnd);
    stream.on('error', this.onError);
    stream.once('close', this.onClose);
  }

  get busy(): boolean {
    return this.job !== undefined;
  }

  send(job: H1Job): void {
    this.job = job;
    this.responded = false;
    this.requestSent = false;
    this.responseDone = false;
    this.keepAlive = true;
    this.scanFrom = 0;
    if (job.cancel) this.offCancel = job.cancel.onCancel((reason) => this.fail(reason instanceof Error ? reason : connError('request cancelled', 'ERR_NM_CANCELLED')));
    const { req } = job;
    // The body's framing is this connection's own (the downstream's may have been chunked, or h2).
    let head = appendHeaders(`${req.method} ${req.path} HTTP/1.1\r\nhost: ${req.authority}\r\n`, req.headers, 'content-length');
    const body = req.body;
    const s = this.stream;
    if (body === undefined) {
      if (req.method === 'POST' || req.method === 'PUT' || req.method === 'PATCH') head += 'content-length: 0\r\n';
      s.write(head + '\r\n', 'latin1');
      this.requestSent = true;
    } else if (Buffer.isBuffer(body)) {
      writeHeadAndBody(s, `${head}content-length: ${body.length}\r\n\r\n`, body);
      this.requestSent = true;
    } else {
      const chunked = req.contentLength === undefined;
      s.write(chunked ? `${head}transfer-encoding: chunked\r\n\r\n` : `${head}content-length: ${req.contentLength}\r\n\r\n`, 'latin1');
      this.pump(body, chunked, job);
    }
  }

  private pump(source: BodySource, chunked: boolean, job: H1Job): void {
    const s = this.stream;
    source.start({
      write: (chunk) => {
        if (this.job !== job || s.destroyed) return true;
        let ok: boolean;
        if (chunked) {
          if (chunk.length === 0) return true;
          s.cork();
          s.write(chunkHeader(chunk.length), 'latin1');
          s.write(chunk);
          ok = s.write('\r\n', 'latin1');
          s.uncork();
        } else ok = s.write(chunk);
        if (!ok) s.once('drain', () => source.resume());
        return ok;
      },
      end: (trailers) => {
        if (this.job !== job) return;
        if (chunked) s.write(lastChunk(trailers), 'latin1');
        this.requestSent = true;
        this.maybeDone();
      },
      fail: (err) => {
        // The downstream's body broke off: the upstream must not take a truncated request as whole.
        if (this.job === job) this.fail(connError(`the request body broke off: ${err.message}`, 'ERR_NM_REQUEST_BODY', err));
      },
    });
  }

  private readonly onData = (chunk: Buffer): void => {
    const b = this.body;
    if (b) {
      this.feedBody(b, chunk);
      return;
    }
    if (!this.job) {
      // Bytes from an idle connection: the upstream is out of step; do not reuse it.
      this.stream.destroy();
      return;
    }
    this.buf = this.buf ? Buffer.concat([this.buf, chunk]) : chunk;
    this.parseHead();
  };

  private parseHead(): void {
    const job = this.job!;
    while (this.buf) {
      const buf = this.buf;
      const end = findHeadEnd(buf, this.scanFrom);
      if (end < 0) {
        if (buf.length > MAX_RESPONSE_HEAD) this.fail(connError('the upstream response head is larger than 64 KiB', 'ERR_NM_UPSTREAM_PROTOCOL'));
        else this.scanFrom = Math.max(0, buf.length - 3);
        return;
      }
      this.scanFrom = 0;
      let head;
      try {
        head = parseResponseHead(buf, end);
      } catch (err) {
        const reason = err instanceof H1ParseError ? err.reason : String(err);
        this.fail(connError(`malformed upstream response: ${reason}`, 'ERR_NM_UPSTREAM_PROTOCOL'));
        return;
      }
      const rest = end < buf.length ? buf.subarray(end) : undefined;
      this.buf = rest;
      if (head.status < 200) continue; // 100 Continue, 103 Early Hints: the real answer follows
      this.responded = true;
      this.keepAlive = head.keepAlive;
      const noBody = job.req.method === 'HEAD' || head.status === 204 || head.status === 304;
      const headers = headersFromList(head.headers, head.connectionTokens);
      if (noBody || (!head.chunked && head.contentLength === 0)) {
        this.buf = undefined;
        if (rest) this.keepAlive = false;
        this.responseDone = true;
        this.answer(job, { status: head.status, headers, endToEnd: true, body: undefined });
        this.maybeDone();
        return;
      }
      // No framing: the body runs until the upstream closes, so the connection cannot be reused.
      if (!head.chunked && head.contentLength === undefined) this.keepAlive = false;
      const sink = new PushedBody(flowOf(this.stream));
      this.body = new BodyReader(sink, head.chunked, head.contentLength ?? Infinity);
      this.buf = undefined;
      this.answer(job, { status: head.status, headers, endToEnd: true, body: sink });
      if (rest) this.feedBody(this.body, rest);
      return;
    }
  }

  private answer(job: H1Job, res: UpstreamResponse): void {
    job.resolve(res);
  }

  private feedBody(reader: BodyReader, chunk: Buffer): void {
    let done: boolean;
    try {
      done = reader.feed(chunk);
    } catch (err) {
      this.fail(connError(`malformed chunked response body: ${(err as Error).message}`, 'ERR_NM_UPSTREAM_PROTOCOL'));
      return;
    }
    if (!done) return;
    // Bytes after the response: the upstream is out of step; do not reuse the connection.
    if (reader.rest) this.keepAlive = false;
    this.body = undefined;
    this.responseDone = true;
    reader.finish();
    this.maybeDone();
  }

  /** Both the request and the response are complete: back to the pool, or close. */
  private maybeDone(): void {
    if (!this.responseDone || !this.requestSent || !this.job) return;
    this.job = undefined;
    this.offCancel?.();
    this.offCancel = undefined;
    this.served++;
    if (this.keepAlive && !this.stream.destroyed) this.owner.release(this);
    else this.stream.destroy();
  }

  private readonly onEnd = (): void => {
    const b = this.body;
    if (b?.untilClose) {
      this.body = undefined;
      this.responseDone = true;
      b.finish();
      this.keepAlive = false;
      this.maybeDone();
      this.stream.destroy();
      return;
    }
    this.fail(connError('the upstream closed the connection', 'ECONNRESET'));
  };

  private readonly onError = (err: Error): void => {
    this.fail(err);
  };

  private readonly onClose = (): void => {
    this.fail(connError('the upstream connection closed', 'ECONNRESET'));
  };

  /** The connection cannot go on: fail whatever is in progress and leave the pool. */
  private fail(err: Error): void {
    const job = this.job;
    const body = this.body;
    this.job = undefined;
    this.body = undefined;
    this.offCancel?.();
    this.offCancel = undefined;
    if (!this.stream.destroyed) this.stream.destroy();
    if (job && !this.responded) {
      const resendable = job.req.body === undefined || Buffer.isBuffer(job.req.body);
      // A kept-alive connection the server closed as we wrote (the classic race), or a
      // tunnel stream the peer refused unprocessed (RST_STREAM REFUSED_STREAM, RFC 9113
      // §8.7: a draining node proxy): nothing was processed, one fresh try.
      const refused = (this.stream as { rstCode?: number }).rstCode === h2c.NGHTTP2_REFUSED_STREAM;
      const staleKeepAlive = (refused || (this.served > 0 && STALE_CODES.has((err as { code?: string }).code ?? ''))) && !job.retried && resendable && !job.cancel?.cancelled;
      if (staleKeepAlive) {
        job.retried = true;
        this.markGone();
        this.owner.retry(job);
        return;
      }
      job.reject(err);
    } else if (body && !this.responseDone) {
      body.sink.abort(err);
    }
    this.markGone();
  }

  private markGone(): void {
    if (this.gone) return;
    this.gone = true;
    this.owner.dead(this);
  }

  /**
   * An idle connection leaves this codec with its stream still open (an agent hand-over
   * gives its descriptor to the next agent): no listener of ours stays on it. The owner
   * has already taken it out of its idle list.
   */
  detach(): Duplex {
    const s = this.stream;
    s.off('data', this.onData);
    s.off('end', this.onEnd);
    s.off('error', this.onError);
    s.off('close', this.onClose);
    this.gone = true;
    return s;
  }

  /** Closes an idle connection (keep-alive expiry, pool closing). */
  close(): void {
    if (this.job) return;
    this.stream.destroy();
  }
}
