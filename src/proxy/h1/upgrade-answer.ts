import type { Duplex } from 'node:stream';
import { BodyReader } from './body-reader';
import { findHeadEnd, parseResponseHead, type RequestHead, type ResponseHead } from './head-parser';
import { H1ParseError } from './parse-error';
import { PushedBody, flowOf } from './pushed-body';

/** Largest response head accepted from an upstream (as for pooled connections). */
const MAX_ANSWER_HEAD = 64 * 1024;

/** What the upstream said to an Upgrade or CONNECT request. */
export interface UpgradeAnswerHandlers {
  /** A 1xx other than 101 (100, 103): the final answer is still to come. */
  interim(head: ResponseHead): void;
  /**
   * 101 to an Upgrade, 2xx to CONNECT: the connection is a tunnel from here. `rawHead` is the
   * answer as sent, `rest` the upstream's bytes after it; the upstream is paused, with no
   * listener of this reader left on it.
   */
  switched(rawHead: Buffer, rest: Buffer | undefined): void;
  /**
   * Any other final answer: an ordinary response, with its body (undefined: none) read off
   * the upstream by its framing; the upstream is closed once it has been read.
   */
  declined(head: ResponseHead, body: PushedBody | undefined): void;
  /** No usable answer (closed, reset, malformed). */
  failed(err: Error): void;
}

function answerError(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

/**
 * Sends an Upgrade or CONNECT request head, and only the head, to a fresh upstream and
 * reads the answer. The bytes the client sent after the head are not this reader's: the
 * caller holds them until `switched`, so that an upstream that declines the upgrade never
 * receives the next request as unparsed tunnel bytes (upgrade smuggling). Returns a
 * function that abandons the upstream (the client went away).
 */
export function awaitUpgradeAnswer(upstream: Duplex, request: RequestHead, rawHead: Buffer, handlers: UpgradeAnswerHandlers): () => void {
  let buf: Buffer | undefined;
  let body: BodyReader | undefined;
  let done = false;

  const detach = () => {
    upstream.removeListener('data', onData);
    upstream.removeListener('end', onEnd);
    upstream.removeListener('error', onError);
    upstream.removeListener('close', onClose);
  };
  const finish = () => {
    done = true;
    detach();
    // A declined upgrade's connection is not reused: its request was no ordinary one.
    upstream.on('error', () => undefined);
    upstream.destroy();
  };
  const fail = (err: Error) => {
    if (done) return;
    const reader = body;
    finish();
    if (reader) reader.sink.abort(err);
    else handlers.failed(err);
  };

  const feed = (reader: BodyReader, chunk: Buffer) => {
    let complete: boolean;
    try {
      complete = reader.feed(chunk);
    } catch (err) {
      fail(answerError(`malformed chunked body in the upstream's answer to an upgrade: ${(err as Error).message}`, 'ERR_NM_UPSTREAM_PROTOCOL'));
      return;
    }
    if (!complete) return;
    body = undefined;
    finish();
    reader.finish();
  };

  const onHead = (head: ResponseHead, end: number, all: Buffer): boolean => {
    const rest = end < all.length ? all.subarray(end) : undefined;
    const connect = request.method === 'CONNECT';
    if (connect ? head.status >= 200 && head.status < 300 : head.status === 101) {
      done = true;
      upstream.pause();
      detach();
      handlers.switched(all.subarray(0, end), rest);
      return true;
    }
    if (head.status === 101) {
      fail(answerError('the upstream answered CONNECT with 101', 'ERR_NM_UPSTREAM_PROTOCOL'));
      return true;
    }
    if (head.status < 200) {
      handlers.interim(head);
      buf = rest;
      return false;
    }
    const noBody = request.method === 'HEAD' || head.status === 204 || head.status === 304 || (!head.chunked && head.contentLength === 0);
    if (noBody) {
      finish();
      handlers.declined(head, undefined);
      return true;
    }
    const sink = new PushedBody(flowOf(upstream));
    const reader = new BodyReader(sink, head.chunked, head.contentLength ?? Infinity);
    body = reader;
    buf = undefined;
    handlers.declined(head, sink);
    if (rest && !done) feed(reader, rest);
    return true;
  };

  const onData = (chunk: Buffer) => {
    if (body) {
      feed(body, chunk);
      return;
    }
    buf = buf ? Buffer.concat([buf, chunk]) : chunk;
    while (buf && !done) {
      const all: Buffer = buf;
      const end = findHeadEnd(all, 0);
      if (end < 0) {
        if (all.length > MAX_ANSWER_HEAD) fail(answerError('the upstream answer to an upgrade has a head larger than 64 KiB', 'ERR_NM_UPSTREAM_PROTOCOL'));
        return;
      }
      let head: ResponseHead;
      try {
        head = parseResponseHead(all, end);
      } catch (err) {
        const reason = err instanceof H1ParseError ? err.reason : String(err);
        fail(answerError(`malformed upstream answer to an upgrade: ${reason}`, 'ERR_NM_UPSTREAM_PROTOCOL'));
        return;
      }
      if (onHead(head, end, all)) return;
    }
  };
  const onEnd = () => {
    const reader = body;
    if (reader?.untilClose) {
      body = undefined;
      finish();
      reader.finish();
      return;
    }
    fail(answerError('the upstream closed the connection before answering the upgrade', 'ECONNRESET'));
  };
  const onError = (err: Error) => fail(err);
  const onClose = () => fail(answerError('the upstream connection closed', 'ECONNRESET'));

  upstream.on('data', onData);
  upstream.on('end', onEnd);
  upstream.on('error', onError);
  upstream.once('close', onClose);
  upstream.write(rawHead);
  return () => {
    if (done) return;
    const reader = body;
    finish();
    reader?.sink.abort(answerError('the client went away', 'ECONNRESET'));
  };
}
