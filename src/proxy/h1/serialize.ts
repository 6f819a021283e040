import { STATUS_CODES } from 'node:http';
import type { Writable } from 'node:stream';
import type { HeaderRecord } from '../http/headers';

/**
 * Writing HTTP/1.1 heads and chunk framing. Heads are built as one latin1 string and go
 * out with the first body bytes in a single write; header values that came from a parsed
 * message are already free of CR/LF, and values set by configuration are checked here so
 * that no route filter can split a message.
 */

const UNSAFE_VALUE = /[\r\n\0]/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

export class HeaderValueError extends Error {
  readonly code = 'ERR_NM_HTTP_HEADER';
}

/** Appends `name: value\r\n` lines for every header of `headers` (arrays: one line each) but `skip`. */
export function appendHeaders(out: string, headers: HeaderRecord, skip?: string): string {
  for (const name in headers) {
    const v = headers[name];
    if (v === undefined || name === skip) continue;
    if (typeof v === 'string') {
      out += line(name, v);
    } else {
      for (const item of v) out += line(name, item);
    }
  }
  return out;
}

/** Header names already checked: the same few dozen names come with every request. */
const CHECKED_NAMES = new Set<string>();

function validName(name: string): boolean {
  if (CHECKED_NAMES.has(name)) return true;
  if (!TOKEN.test(name)) return false;
  if (CHECKED_NAMES.size < 4096) CHECKED_NAMES.add(name);
  return true;
}

function line(name: string, value: string): string {
  if (UNSAFE_VALUE.test(value) || !validName(name)) {
    throw new HeaderValueError(`header ${JSON.stringify(name)} has a name or value an HTTP/1.1 message cannot carry (CR, LF or NUL): check the route's header filters`);
  }
  return `${name}: ${value}\r\n`;
}

const STATUS_LINES = new Map<number, string>();

/** "HTTP/1.1 200 OK\r\n", cached per status. */
export function statusLine(status: number): string {
  let s = STATUS_LINES.get(status);
  if (s === undefined) {
    s = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
    if (STATUS_LINES.size < 1000) STATUS_LINES.set(status, s);
  }
  return s;
}

/** The size line that precedes a chunk of `length` bytes. */
export function chunkHeader(length: number): string {
  return `${length.toString(16)}\r\n`;
}

/** The last chunk and the trailer section. */
export function lastChunk(trailers: HeaderRecord | undefined): string {
  return trailers ? appendHeaders('0\r\n', trailers) + '\r\n' : '0\r\n\r\n';
}

/** A complete response that closes the connection: empty for malformed requests, or a short text (an authorization denial). */
export function closingResponse(status: number, body = ''): string {
  const type = body ? 'content-type: text/plain\r\n' : '';
  return `${statusLine(status)}connection: close\r\n${type}content-length: ${Buffer.byteLength(body, 'latin1')}\r\n\r\n${body}`;
}

/** Bodies up to this size go out in one buffer with their head (one write, no writev). */
const JOIN_MAX = 16 * 1024;

/**
 * Writes a head and the first body bytes: one buffer for a small body (Node's single-buffer
 * write is cheaper than a corked writev of a string and a buffer), else corked.
 */
export function writeHeadAndBody(out: Writable, head: string, body: Buffer): boolean {
  if (body.length <= JOIN_MAX) {
    const buf = Buffer.allocUnsafe(head.length + body.length);
    buf.write(head, 0, 'latin1');
    body.copy(buf, head.length);
    return out.write(buf);
  }
  out.cork();
  out.write(head, 'latin1');
  const ok = out.write(body);
  out.uncork();
  return ok;
}
