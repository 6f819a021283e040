import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../log';
import type { DownstreamExchange, RequestBody } from '../http/exchange';
import { headersFromList, type HeaderRecord } from '../http/headers';
import { relay } from '../tcp-relay';
import { BodyReader } from './body-reader';
import { findHeadEnd, parseRequestHead, skipEmptyLines, type RequestHead, type ResponseHead } from './head-parser';
import { H1ParseError } from './parse-error';
import { PushedBody, flowOf, type Flow } from './pushed-body';
import { appendHeaders, chunkHeader, closingResponse, lastChunk, statusLine, writeHeadAndBody } from './serialize';
import { awaitUpgradeAnswer } from './upgrade-answer';

/** Limits that keep one misbehaving client from hurting the pods that share the proxy. */
export interface H1Limits {
  /** Largest request head (431 beyond). */
  maxHeaderSize: number;
  /** Time to receive a complete request head (slowloris); 408 and close after it. */
  headersTimeoutMs: number;
  /** Time to receive a whole request. */
  requestTimeoutMs: number;
  /** Idle keep-alive connections are closed after this. */
  keepAliveTimeoutMs: number;
}

/** Bodies up to this size are read whole before the request is dispatched (one Buffer, no stream). */
const WHOLE_BODY_MAX = 64 * 1024;
/** Bytes of pipelined requests held while a response is in progress; the socket pauses beyond. */
const PIPELINE_HOLD_MAX = 64 * 1024;

export interface H1Handlers {
  request(exchange: DownstreamExchange, socket: Socket): void;
  /**
   * Upgrade (WebSocket) and CONNECT: open an upstream for it and give it to
   * `upgrade.connect` (or answer `upgrade.refuse`). The connection sends the head alone,
   * and the client's bytes after it only once the upstream has switched.
   */
  upgrade(upgrade: PendingUpgrade, socket: Socket): void;
  /** The upstream switched: the connection is a byte relay from now on (which the next agent could take over). */
  switched?(socket: Socket, upstream: Duplex): void;
}

/** An Upgrade or CONNECT request waiting for its upstream. */
export interface PendingUpgrade {
  readonly head: RequestHead;
  /** The request head as it came (empty lines before it left out): what the upstream gets. */
  readonly rawHead: Buffer;
  /**
   * The upstream is open: the head goes to it. On a 101 (2xx for CONNECT) the connection
   * becomes a byte relay between the client and `upstream`; any other answer goes to the
   * client as a response, and the connection goes on with HTTP/1.1.
   */
  connect(upstream: Duplex): void;
  /** No upstream: `status` (and close) for the client; `body` (text) when the client should read why (403: an authorization denial). */
  refuse(status: 403 | 502 | 503, reason: string, body?: string): void;
}

const NO_BODY_STATUS = (s: number) => s === 204 || s === 304 || (s >= 100 && s < 200);

/**
 * One downstream HTTP/1.1 connection on a raw socket: parses requests (strictly: a
 * malformed or ambiguous one is answered 400/431/501/505 and the connection closed, never
 * forwarded), hands each to the pipeline as a DownstreamExchange, writes the response.
 * Requests are served one at a time; pipelined ones wait (bounded) for their turn.
 */
export class H1ServerConnection {
  private buf: Buffer | undefined;
  private scanFrom = 0;
  private active: H1Exchange | undefined;
  /** A parsed head whose (small) body is still arriving. */
  private waiting: { head: RequestHead; headEnd: number } | undefined;
  /** The body being streamed to the active exchange. */
  private streaming: BodyReader | undefined;
  private headStartedAt = 0;
  private requestStartedAt = 0;
  private idleSince: number;
  private clientEnded = false;
  private pausedForHold = false;
  /** Set during an agent hand-over: once idle, the connection is given to this instead of served on. */
  private handOff: ((socket: Socket) => void) | undefined;
  /** An Upgrade or CONNECT waiting for the upstream's answer; the client's later bytes are held. */
  private upgrading: { abandon: () => void } | undefined;
  closed = false;
  draining = false;

  constructor(
    readonly socket: Socket,
    private readonly handlers: H1Handlers,
    private readonly limits: H1Limits,
    private readonly log: Logger,
    private readonly onGone: (c: H1ServerConnection) => void,
  ) {
    this.idleSince = performance.now();
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('error', this.onError);
    socket.once('close', this.onClose);
  }

  private readonly onData = (chunk: Buffer): void => {
    const streaming = this.streaming;
    if (streaming) {
      this.feedBody(streaming, chunk);
      return;
    }
    this.buf = this.buf ? Buffer.concat([this.buf, chunk]) : chunk;
    if (this.active || this.upgrading) {
      if (this.buf.length > PIPELINE_HOLD_MAX && !this.pausedForHold) {
        this.pausedForHold = true;
        this.socket.pause();
      }
      return;
    }
    this.parse();
  };

  private readonly onEnd = (): void => {
    this.clientEnded = true;
    if (this.streaming) {
      const s = this.streaming;
      this.streaming = undefined;
      s.sink.abort(Object.assign(new Error('the client closed the connection in the middle of the request body'), { code: 'ECONNRESET' }));
    }
    // Nothing in progress: the client is done with this connection.
    if (!this.active && !this.upgrading) this.close();
  };

  private readonly onError = (): void => {
    this.socket.destroy();
  };

  private readonly onClose = (): void => {
    this.closed = true;
    if (this.streaming) {
      this.streaming.sink.abort(Object.assign(new Error('the client connection closed'), { code: 'ECONNRESET' }));
      this.streaming = undefined;
    }
    this.active?.clientGone();
    this.upgrading?.abandon();
    this.upgrading = undefined;
    this.onGone(this);
  };

  /** Periodic check (the server's sweep): slowloris, stalled bodies, idle keep-alive. */
  check(now: number): void {
    if (this.closed) return;
    if (this.headStartedAt && now - this.headStartedAt > this.limits.headersTimeoutMs) {
      this.reject(408, 'request head not received in time');
      return;
    }
    if (this.upgrading && now - this.requestStartedAt > this.limits.requestTimeoutMs) {
      this.upgrading.abandon();
      this.upgrading = undefined;
      this.reject(504, 'no answer from the upstream to the upgrade in time');
      return;
    }
    if ((this.waiting || this.streaming) && now - this.requestStartedAt > this.limits.requestTimeoutMs) {
      if (this.active && this.active.headersSent) this.socket.destroy();
      else this.reject(408, 'request body not received in time');
      return;
    }
    if (!this.active && !this.upgrading && !this.headStartedAt && !this.waiting && now - this.idleSince > this.limits.keepAliveTimeoutMs) this.close();
  }

  /** Between requests, nothing of a next one read yet: the connection can change hands. */
  get idle(): boolean {
    // Nothing buffered either way: no next request read, no response bytes unsent.
    return !this.closed && !this.clientEnded && !this.active && !this.upgrading && !this.headStartedAt && !this.waiting && !this.streaming && !this.buf && !this.pausedForHold
      && this.socket.readableLength === 0 && this.socket.writableLength === 0;
  }

  /**
   * Lets go of an idle connection without closing it (the next agent takes its socket):
   * no more reads or events here; the caller stops the socket reading.
   */
  detach(): Socket {
    this.closed = true;
    this.socket.removeListener('data', this.onData);
    this.socket.removeListener('end', this.onEnd);
    this.socket.removeListener('error', this.onError);
    this.socket.removeListener('close', this.onClose);
    this.onGone(this);
    return this.socket;
  }

  /**
   * Agent hand-over: gives the connection to `take`, detached, as soon as it is idle (now,
   * or when its current response is written out). False when it is closed already.
   */
  handOffWhenIdle(take: (socket: Socket) => void): boolean {
    if (this.closed) return false;
    this.handOff = take;
    this.tryHandOff();
    return true;
  }

  /** The hand-over gave up waiting: the connection is served (or drained) here as usual. */
  keep(): void {
    this.handOff = undefined;
  }

  /** Waiting to be handed over (not yet idle, still open). */
  get handingOff(): boolean {
    return this.handOff !== undefined && !this.closed;
  }

  private tryHandOff(): void {
    const take = this.handOff;
    if (!take || this.closed) return;
    if (this.idle) {
      this.handOff = undefined;
      take(this.detach());
      return;
    }
    // The response's last bytes still queued here: idle once they are written.
    if (!this.active && !this.buf && this.socket.writableLength > 0) this.socket.once('drain', () => this.tryHandOff());
  }

  /** Drain: idle connections close now, busy ones after their response. */
  drain(): void {
    this.draining = true;
    if (!this.active && !this.upgrading && !this.headStartedAt && !this.waiting) this.close();
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.end();
    this.socket.once('finish', () => this.socket.destroy());
  }

  /** Answers a malformed request and closes: nothing of it is forwarded. */
  private reject(status: number, reason: string, body?: string): void {
    this.log.debug({ status, reason }, 'rejected a malformed request');
    this.buf = undefined;
    this.headStartedAt = 0;
    this.waiting = undefined;
    this.socket.removeListener('data', this.onData);
    if (!this.socket.writable || this.closed) {
      this.socket.destroy();
      return;
    }
    this.closed = true;
    this.socket.end(closingResponse(status, body), 'latin1');
    this.socket.once('finish', () => this.socket.destroy());
  }

  private parse(): void {
    while (this.buf && !this.active && !this.upgrading && !this.closed) {
      let buf = this.buf;
      let head: RequestHead;
      let headEnd: number;
      if (this.waiting) {
        ({ head, headEnd } = this.waiting);
        if (buf.length - headEnd < head.contentLength!) return;
        this.waiting = undefined;
      } else {
        // Empty lines before a request (the first, or a pipelined one) are dropped, as
        // llhttp does; else their CRLFCRLF would be taken for the end of a head. They do
        // not start a head: a client that sends nothing else is idle (keep-alive timeout).
        const start = skipEmptyLines(buf, 0);
        if (start > 0) {
          buf = buf.subarray(start);
          this.buf = buf.length > 0 ? buf : undefined;
          this.scanFrom = 0;
          if (buf.length === 0) return;
        }
        if (!this.headStartedAt) this.headStartedAt = performance.now();
        headEnd = findHeadEnd(buf, this.scanFrom);
        if (headEnd < 0) {
          if (buf.length > this.limits.maxHeaderSize) this.reject(431, 'request head too large');
          else this.scanFrom = Math.max(0, buf.length - 3);
          return;
        }
        this.scanFrom = 0;
        if (headEnd > this.limits.maxHeaderSize) {
          this.reject(431, 'request head too large');
          return;
        }
        try {
          head = parseRequestHead(buf, headEnd);
        } catch (err) {
          if (err instanceof H1ParseError) this.reject(err.status, err.reason);
          else this.reject(400, String(err));
          return;
        }
        this.headStartedAt = 0;
        this.requestStartedAt = performance.now();
        const hasBody = head.chunked || (head.contentLength ?? 0) > 0;
        if (head.method === 'CONNECT') {
          // RFC 9110 §9.3.6: CONNECT has no content; framed bytes after its head could be
          // read as body by one hop and as tunnel data by the next.
          if (hasBody) this.reject(400, 'CONNECT with content');
          else this.startUpgrade(buf, head, headEnd);
          return;
        }
        // An Upgrade with a body is served as a plain request (the proxy may ignore Upgrade,
        // RFC 9110 §7.8, and drops it as hop-by-hop): an upstream that switched only after
        // reading the body would otherwise wait for bytes held until it has switched.
        if (head.upgrade && !hasBody) {
          this.startUpgrade(buf, head, headEnd);
          return;
        }
        const length = head.contentLength ?? 0;
        if (head.expectContinue && (head.chunked || length > 0)) this.socket.write('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
        if (!head.chunked && length > 0 && length <= WHOLE_BODY_MAX && buf.length - headEnd < length) {
          this.waiting = { head, headEnd };
          return;
        }
      }
      this.dispatch(buf, head, headEnd);
    }
  }

  private dispatch(buf: Buffer, head: RequestHead, headEnd: number): void {
    let body: RequestBody;
    let rest: Buffer | undefined;
    const length = head.contentLength ?? 0;
    if (head.chunked || buf.length - headEnd < length) {
      const stream = new PushedBody(this.socket.destroyed ? deadFlow : flowOf(this.socket));
      this.streaming = new BodyReader(stream, head.chunked, length);
      body = stream;
      const first = buf.subarray(headEnd);
      this.buf = undefined;
      this.active = new H1Exchange(this, head, body);
      if (first.length > 0) this.feedBody(this.streaming, first);
    } else {
      body = length > 0 ? buf.subarray(headEnd, headEnd + length) : undefined;
      rest = buf.length > headEnd + length ? buf.subarray(headEnd + length) : undefined;
      this.buf = rest;
      this.active = new H1Exchange(this, head, body);
    }
    this.handlers.request(this.active, this.socket);
  }

  private feedBody(reader: BodyReader, chunk: Buffer): void {
    let done: boolean;
    try {
      done = reader.feed(chunk);
    } catch (err) {
      this.streaming = undefined;
      reader.sink.abort(err as Error);
      this.socket.destroy();
      return;
    }
    if (!done) return;
    this.streaming = undefined;
    this.keepRest(reader.rest);
    reader.finish();
  }

  /**
   * Holds the bytes after the body (a pipelined request) before the body is finished: a
   * handler that answers from the body's end calls finished() right there, and only sees
   * (and schedules the parse of) what is already in `buf`; set afterwards, it would sit
   * unread until the client sent more.
   */
  private keepRest(rest: Buffer | undefined): void {
    if (rest) this.buf = this.buf ? Buffer.concat([this.buf, rest]) : rest;
  }

  /**
   * An Upgrade or CONNECT: the handler opens the upstream, which gets the head alone. The
   * client's bytes after the head (a WebSocket frame sent early, or the next request) are
   * held, bounded: the socket is paused, so the kernel's window holds back the rest, until
   * the upstream has switched; then they go to it, and the connection is a byte relay.
   * If the upstream declines, its answer is the response to this request and the held
   * bytes are parsed as the next request: the connection goes on as HTTP/1.1 (the
   * declined upgrade's upstream connection is closed). The next request then passes
   * routing, metrics and policy like any other, instead of being relayed unparsed.
   */
  private startUpgrade(buf: Buffer, head: RequestHead, headEnd: number): void {
    this.headStartedAt = 0;
    this.buf = headEnd < buf.length ? buf.subarray(headEnd) : undefined;
    if (!this.pausedForHold) {
      this.pausedForHold = true;
      this.socket.pause();
    }
    let abandoned = false;
    let abandonUpstream: (() => void) | undefined;
    const state = {
      abandon: () => {
        abandoned = true;
        abandonUpstream?.();
      },
    };
    this.upgrading = state;
    const current = () => this.upgrading === state && !abandoned;
    const pending: PendingUpgrade = {
      head,
      rawHead: buf.subarray(0, headEnd),
      connect: (upstream) => {
        if (!current()) {
          upstream.destroy();
          return;
        }
        abandonUpstream = awaitUpgradeAnswer(upstream, head, pending.rawHead, {
          interim: (answer) => {
            // RFC 9110 §15.2: no 1xx to an HTTP/1.0 client.
            if (current() && head.versionMinor === 1) this.socket.write(`${appendHeaders(statusLine(answer.status), headersFromList(answer.headers, answer.connectionTokens))}\r\n`, 'latin1');
          },
          switched: (rawAnswer, rest) => {
            if (!current()) {
              upstream.destroy();
              return;
            }
            this.switchToTunnel(upstream, rawAnswer, rest);
          },
          declined: (answer, body) => {
            if (!current()) {
              body?.destroy();
              return;
            }
            this.upgrading = undefined;
            this.answerDeclined(head, answer, body);
          },
          failed: (err) => {
            if (!current()) return;
            this.upgrading = undefined;
            this.log.debug({ err: err.message }, 'no usable answer from the upstream to an upgrade');
            this.reject(502, `upgrade: ${err.message}`);
          },
        });
      },
      refuse: (status, reason, body) => {
        if (!current()) return;
        this.upgrading = undefined;
        this.reject(status, reason, body);
      },
    };
    this.handlers.upgrade(pending, this.socket);
  }

  /** The upstream switched: from here the connection is bytes both ways, no longer the server's. */
  private switchToTunnel(upstream: Duplex, rawAnswer: Buffer, rest: Buffer | undefined): void {
    this.upgrading = undefined;
    this.closed = true;
    this.socket.pause();
    this.socket.removeListener('data', this.onData);
    this.socket.removeListener('end', this.onEnd);
    this.socket.removeListener('error', this.onError);
    this.socket.removeListener('close', this.onClose);
    this.onGone(this);
    const held = this.buf;
    this.buf = undefined;
    this.socket.write(rawAnswer);
    if (rest) this.socket.write(rest);
    if (held) upstream.write(held);
    // The client's end was seen while held: relay will not see it again.
    if (this.clientEnded) upstream.end();
    void relay(this.socket, upstream as Socket);
    this.handlers.switched?.(this.socket, upstream);
  }

  /** The upstream declined: its answer is this request's response, and HTTP/1.1 goes on. */
  private answerDeclined(head: RequestHead, answer: ResponseHead, body: PushedBody | undefined): void {
    const exchange = new H1Exchange(this, head, undefined);
    this.active = exchange;
    this.requestStartedAt = performance.now();
    exchange.writeHead(answer.status, headersFromList(answer.headers, answer.connectionTokens));
    if (!body) {
      exchange.end();
      return;
    }
    body.start({
      write: (chunk) => {
        const ok = exchange.write(chunk);
        if (!ok) exchange.onDrain(() => body.resume());
        return ok;
      },
      end: (trailers) => exchange.end(trailers),
      fail: () => exchange.destroy(),
    });
  }

  /** The exchange's response has ended: next request, or close. */
  finished(exchange: H1Exchange, keepAlive: boolean): void {
    if (this.active !== exchange) return;
    this.active = undefined;
    this.idleSince = performance.now();
    // A body the pipeline did not read to its end leaves the connection out of step.
    const bodyLeft = this.streaming !== undefined;
    if (!keepAlive || bodyLeft || this.clientEnded || (this.draining && !this.handOff)) {
      this.streaming = undefined;
      this.close();
      return;
    }
    if (this.pausedForHold) {
      this.pausedForHold = false;
      this.socket.resume();
    }
    // Pipelined requests: next turn (not from inside the response's own call stack).
    if (this.buf) setImmediate(() => this.parse());
    else if (this.handOff) setImmediate(() => this.tryHandOff());
  }
}

const deadFlow: Flow = { pause: () => undefined, resume: () => undefined, destroy: () => undefined };

/** One request/response on a downstream HTTP/1.1 connection. */
class H1Exchange implements DownstreamExchange {
  readonly method: string;
  readonly path: string;
  readonly authority: string;
  readonly headers: HeaderRecord;
  readonly protocol = 'http1' as const;
  readonly contentLength: number | undefined;
  private readonly socket: Socket;
  private status = 0;
  private responseHeaders: HeaderRecord | undefined;
  private headWritten = false;
  private mode: 'length' | 'chunked' | 'close' | 'none' = 'length';
  private keepAlive: boolean;
  private ended = false;
  private closeListeners: Array<() => void> | undefined;
  private readonly versionMinor: 0 | 1;

  constructor(private readonly conn: H1ServerConnection, head: RequestHead, readonly body: RequestBody) {
    this.socket = conn.socket;
    this.method = head.method;
    // The origin-form and the target's authority (absolute-form), not the target as sent.
    this.path = head.path;
    this.authority = head.authority;
    this.headers = headersFromList(head.headers, head.connectionTokens);
    if (head.expectContinue) delete this.headers['expect'];
    this.contentLength = head.contentLength;
    this.keepAlive = head.keepAlive;
    this.versionMinor = head.versionMinor;
  }

  get bodyBytesRead(): number {
    const b = this.body;
    return b === undefined ? 0 : Buffer.isBuffer(b) ? b.length : (b as PushedBody).bytes;
  }

  get headersSent(): boolean {
    return this.headWritten;
  }

  get closed(): boolean {
    return this.conn.closed && !this.ended;
  }

  writeHead(status: number, headers: HeaderRecord): void {
    this.status = status;
    this.responseHeaders = headers;
  }

  /** The status line and headers, with the framing this response will use. */
  private head(): string {
    const headers = this.responseHeaders ?? {};
    let out = appendHeaders(statusLine(this.status), headers);
    if (this.method === 'HEAD' || NO_BODY_STATUS(this.status)) {
      this.mode = 'none';
    } else if (headers['content-length'] !== undefined) {
      this.mode = 'length';
    } else if (this.ended) {
      // end() without a body: say so rather than chunk nothing.
      this.mode = 'length';
      out += 'content-length: 0\r\n';
    } else if (this.versionMinor === 1) {
      this.mode = 'chunked';
      out += 'transfer-encoding: chunked\r\n';
    } else {
      this.mode = 'close';
      this.keepAlive = false;
    }
    if (!this.keepAlive || this.conn.draining) out += 'connection: close\r\n';
    else if (this.versionMinor === 0) out += 'connection: keep-alive\r\n';
    return out + '\r\n';
  }

  write(chunk: Buffer): boolean {
    if (this.ended || this.socket.destroyed) return false;
    if (!this.headWritten) {
      if (this.status === 0) this.status = 200;
      this.headWritten = true;
      const head = this.head();
      if (this.mode === 'none') {
        return this.socket.write(head, 'latin1');
      }
      if (this.mode !== 'chunked') return writeHeadAndBody(this.socket, head, chunk);
      this.socket.cork();
      this.socket.write(head, 'latin1');
      const ok = this.writeBody(chunk);
      this.socket.uncork();
      return ok;
    }
    if (this.mode === 'none') return true;
    return this.writeBody(chunk);
  }

  private writeBody(chunk: Buffer): boolean {
    if (this.mode !== 'chunked') return this.socket.write(chunk);
    if (chunk.length === 0) return true;
    this.socket.write(chunkHeader(chunk.length), 'latin1');
    this.socket.write(chunk);
    return this.socket.write('\r\n', 'latin1');
  }

  onDrain(fn: () => void): void {
    this.socket.once('drain', fn);
  }

  end(trailers?: HeaderRecord): void {
    if (this.ended) return;
    if (this.socket.destroyed) {
      this.ended = true;
      return;
    }
    if (!this.headWritten) {
      if (this.status === 0) this.status = 200;
      this.headWritten = true;
      this.ended = true;
      this.socket.write(this.head(), 'latin1');
    } else {
      this.ended = true;
      if (this.mode === 'chunked') this.socket.write(lastChunk(trailers && Object.keys(trailers).length > 0 ? trailers : undefined), 'latin1');
    }
    this.conn.finished(this, this.keepAlive && this.mode !== 'close');
  }

  destroy(): void {
    this.ended = true;
    this.socket.destroy();
  }

  onClose(fn: () => void): void {
    (this.closeListeners ??= []).push(fn);
  }

  /** From the connection: the socket closed. */
  clientGone(): void {
    if (this.ended) return;
    const listeners = this.closeListeners;
    this.closeListeners = undefined;
    if (listeners) for (const fn of listeners) fn();
  }
}
