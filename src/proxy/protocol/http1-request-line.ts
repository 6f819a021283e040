/**
 * Whether a connection's first bytes are an HTTP/1 request line, by its grammar (RFC 9112
 * §3): method (a token, any token: `PURGE`, `QUERY`, `get`…) SP request-target SP
 * "HTTP/1." DIGIT, after any number of empty lines (§2.2 lets a server ignore them, and
 * llhttp does). The sniffer, not the parser: it only decides whether the strict parser
 * (src/proxy/h1/head-parser.ts) gets the connection or it is relayed as opaque bytes. So
 * it is looser than the parser on purpose (runs of SP, any byte but SP/CR/LF in the
 * target, whatever follows the version digit): what an HTTP server somewhere might read as
 * a request must reach the parser, which answers 400 to what it refuses; relayed opaque,
 * it would reach the app with no routing, metrics or authorization on it.
 */
export type RequestLineVerdict = 'yes' | 'no' | 'more';

/**
 * Bytes of a still-possible request line (empty lines before it included) after which the
 * sniffer stops waiting and says HTTP/1: the parser then has the last word (431 beyond its
 * head limit, 408 if the line never ends). Calling it TCP instead would let a client
 * bypass L7 by sending a long request-target.
 */
export const MAX_SNIFFED_REQUEST_LINE = 8 * 1024;

const SP = 0x20;
const CR = 0x0d;
const LF = 0x0a;
const VERSION_PREFIX = Buffer.from('HTTP/1.', 'latin1');

/** tchar (RFC 9110 §5.6.2). */
const TCHAR = new Uint8Array(256);
for (const ch of "!#$%&'*+-.^_`|~") TCHAR[ch.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;

/** 'more': what has arrived could still be the start of a request line. */
export function http1RequestLine(buf: Buffer): RequestLineVerdict {
  const n = buf.length;
  let i = 0;
  // Empty lines: CRLF or a bare LF, as llhttp skips them.
  while (i < n && (buf[i] === LF || buf[i] === CR)) {
    if (buf[i] === LF) i++;
    else if (i + 1 === n) return 'more';
    else if (buf[i + 1] === LF) i += 2;
    else return 'no';
  }
  const method = i;
  while (i < n && TCHAR[buf[i]] === 1) i++;
  if (i === n) return 'more';
  if (i === method || buf[i] !== SP) return 'no';
  while (i < n && buf[i] === SP) i++;
  const target = i;
  while (i < n && buf[i] !== SP && buf[i] !== CR && buf[i] !== LF) i++;
  if (i === n) return 'more';
  // CR or LF right after the target: an HTTP/0.9 line, or a text protocol (Redis, memcached).
  if (i === target || buf[i] !== SP) return 'no';
  while (i < n && buf[i] === SP) i++;
  for (let k = 0; k < VERSION_PREFIX.length; k++, i++) {
    if (i === n) return 'more';
    if (buf[i] !== VERSION_PREFIX[k]) return 'no';
  }
  if (i === n) return 'more';
  return buf[i] >= 0x30 && buf[i] <= 0x39 ? 'yes' : 'no';
}

/**
 * A request line under way: empty lines, then a method token and the space after it. A
 * bare token ("hello", as a text protocol's client may send and then wait) is not: alone
 * it says nothing about HTTP.
 */
export function requestLineStarted(buf: Buffer): boolean {
  let i = 0;
  while (i < buf.length && (buf[i] === LF || buf[i] === CR)) i++;
  const method = i;
  while (i < buf.length && TCHAR[buf[i]] === 1) i++;
  return i > method && i < buf.length && buf[i] === SP;
}
