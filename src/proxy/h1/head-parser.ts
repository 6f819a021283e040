import { H1ParseError } from './parse-error';
import { parseRequestTarget } from './request-target';

/**
 * A strict HTTP/1.1 head parser (RFC 9110 / RFC 9112) for requests and responses read from raw
 * sockets. The head is decoded once as latin1 (one char per byte, so string and buffer indices
 * agree); its bytes are scanned once against 256-entry lookup tables (Buffer element reads are
 * cheaper than String#charCodeAt), and the method, target, names and values are slices of that
 * one string. The head's final CRLFCRLF is the sentinel that stops every scan.
 *
 * Anything two HTTP implementations could frame differently (bare CR or LF, obs-fold, whitespace
 * before a colon, several or odd Content-Length values, Content-Length with Transfer-Encoding,
 * an HTAB after either's value, codings we cannot decode) is refused with an H1ParseError
 * rather than guessed at.
 */

export const MAX_HEAD_BYTES_DEFAULT = 16 * 1024;
/** More header fields than this in one head is answered with 431. */
export const MAX_HEADER_FIELDS = 256;

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');

/**
 * Index of the first byte of buf at or after `from` that does not belong to an empty line
 * (CRLF, or a bare LF as llhttp allows) before a request line: RFC 9112 §2.2 lets a server
 * ignore them, before the first request and between pipelined ones. A CR at the very end
 * is not skipped (its LF may follow).
 */
export function skipEmptyLines(buf: Buffer, from: number): number {
  let i = from;
  for (;;) {
    const c = buf[i];
    if (c === 0x0a) i++;
    else if (c === 0x0d && buf[i + 1] === 0x0a) i += 2;
    else return i;
  }
}

/** Index just past the first "\r\n\r\n" at or after `from` in buf[0..length), or -1. (Callers pass `from` = previous length - 3 to rescan only new bytes.) */
export function findHeadEnd(buf: Buffer, from: number): number {
  // A negative offset would make Buffer#indexOf count from the end: clamp it.
  const i = buf.indexOf(CRLFCRLF, from > 0 ? from : 0);
  return i === -1 ? -1 : i + 4;
}

export interface RequestHead {
  method: string;            // as sent (token chars only), e.g. "GET"
  target: string;            // request-target as sent, e.g. "/a?b=1" or "http://a/b?c=1"
  /** What routing matches and what goes upstream: the target's origin-form (path and query), "*" for OPTIONS *, CONNECT's authority. */
  path: string;
  /** The authority of an absolute-form target (RFC 9112 §3.2.2: it wins over Host) or of CONNECT's; else the Host header ('' without one). */
  authority: string;
  versionMinor: 0 | 1;       // HTTP/1.0 or HTTP/1.1
  /** Header names lower-cased, values with leading/trailing OWS removed, in arrival order: [name0, value0, name1, value1, ...] */
  headers: string[];
  contentLength: number | undefined;  // from a single valid Content-Length
  chunked: boolean;          // Transfer-Encoding present and its last coding is "chunked"
  keepAlive: boolean;        // HTTP/1.1 unless Connection has "close"; HTTP/1.0 only with Connection "keep-alive"
  upgrade: boolean;          // Connection lists "upgrade" AND an Upgrade header is present
  expectContinue: boolean;   // Expect: 100-continue (case-insensitive)
  /** Lower-cased tokens of the Connection header(s) (to strip the headers they name). */
  connectionTokens: string[];
}

export interface ResponseHead {
  status: number;            // 100..999 (3 digits)
  reason: string;
  versionMinor: 0 | 1;
  headers: string[];         // as above
  contentLength: number | undefined;
  chunked: boolean;
  keepAlive: boolean;        // same rules as requests
  connectionTokens: string[];
}

// ---------------------------------------------------------------------------------------------
// Character tables (index: a latin1 char code, 0..255)

/** tchar (RFC 9110 §5.6.2): 1, upper-case ALPHA: 2 (also a tchar), anything else: 0. */
const TCHAR = new Uint8Array(256);
/** field-vchar, SP and HTAB (RFC 9110 §5.5): 1 = allowed in a field value / reason phrase. */
const FIELD_CHAR = new Uint8Array(256);
for (const ch of "!#$%&'*+-.^_`|~") TCHAR[ch.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 2;
FIELD_CHAR[0x09] = 1;
for (let c = 0x20; c <= 0x7e; c++) FIELD_CHAR[c] = 1;
for (let c = 0x80; c <= 0xff; c++) FIELD_CHAR[c] = 1;
/** FIELD_CHAR with CR marked 2: a value runs up to the first non-1 byte, which must be CR (then LF). */
const VALUE_SCAN = FIELD_CHAR.slice();
VALUE_SCAN[0x0d] = 2;

/** ASCII lower-casing of a byte. */
const LOWER = new Uint8Array(256);
for (let c = 0; c < 256; c++) LOWER[c] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;

/**
 * Common field names, matched case-insensitively on the bytes: a hit costs no slice and no
 * toLowerCase, and yields an internalized string that later comparisons check by identity.
 */
const COMMON_NAMES = [
  'host', 'user-agent', 'accept', 'accept-encoding', 'accept-language', 'accept-ranges', 'age',
  'authorization', 'cache-control', 'connection', 'content-encoding', 'content-length',
  'content-range', 'content-type', 'cookie', 'date', 'etag', 'expect', 'expires', 'forwarded',
  'if-modified-since', 'if-none-match', 'keep-alive', 'last-modified', 'location', 'origin',
  'pragma', 'proxy-authorization', 'proxy-connection', 'range', 'referer', 'server', 'set-cookie',
  'te', 'trailer', 'transfer-encoding', 'upgrade', 'upgrade-insecure-requests', 'vary', 'via',
  'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-real-ip', 'x-request-id',
  'traceparent', 'tracestate', 'baggage', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid',
  'x-b3-sampled', 'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-protocol',
  'sec-websocket-extensions', 'sec-websocket-accept', 'strict-transport-security',
  'access-control-allow-origin', 'www-authenticate', 'x-envoy-upstream-service-time',
];
/** By length: the byte forms and the strings of the common names of that length. */
const COMMON_BYTES: Uint8Array[][] = [];
const COMMON_STRINGS: string[][] = [];
for (const name of COMMON_NAMES) {
  (COMMON_BYTES[name.length] ??= []).push(Buffer.from(name, 'latin1'));
  (COMMON_STRINGS[name.length] ??= []).push(name);
}
for (let n = 0; n < COMMON_BYTES.length; n++) {
  COMMON_BYTES[n] ??= [];
  COMMON_STRINGS[n] ??= [];
}

/** The lower-cased name b[start..end), from COMMON_NAMES or sliced from `s`. */
function fieldName(b: Uint8Array, s: string, start: number, end: number, hasUpper: boolean): string {
  const n = end - start;
  if (n < COMMON_BYTES.length) {
    const bucket = COMMON_BYTES[n];
    for (let j = 0; j < bucket.length; j++) {
      const cand = bucket[j];
      let k = 0;
      while (k < n && LOWER[b[start + k]] === cand[k]) k++;
      if (k === n) return COMMON_STRINGS[n][j];
    }
  }
  const name = s.slice(start, end);
  return hasUpper ? name.toLowerCase() : name;
}

/** HTTP-version syntax (RFC 9112 §2.3), or a bare "HTTP/2" / "HTTP/3" as written in RFC 9113/9114. */
const HTTP_VERSION_LIKE = /^HTTP\/(?:\d\.\d|[2-9])$/;

type Latin1Buffer = Buffer & { latin1Slice(start: number, end: number): string };

function fail400(reason: string): never {
  throw new H1ParseError(400, reason);
}

function describeChar(c: number): string {
  if (c === 0x0a) return 'bare LF';
  if (c === 0x0d) return 'bare CR';
  return `character 0x${c.toString(16).padStart(2, '0')}`;
}

/**
 * Parses the field line starting at `pos` and appends its lower-cased name and OWS-trimmed value
 * to `out`; returns the index just past the line's CRLF. `b` holds the bytes and `s` the same
 * bytes decoded as latin1 (the scan reads bytes, the results are slices of `s`); the line must
 * be followed, somewhere, by a CR (the head's final CRLFCRLF is the sentinel). Shared with the
 * chunked decoder for trailer fields. @internal
 */
export function parseFieldLine(b: Uint8Array, s: string, pos: number, out: string[], what: string): number {
  let c = b[pos];
  if (c === 0x20 || c === 0x09) fail400(`obs-fold (a ${what} line starting with whitespace)`);
  let i = pos;
  let kinds = 0;
  let t = 0;
  while ((t = TCHAR[b[i]]) !== 0) {
    kinds |= t;
    i++;
  }
  c = b[i];
  if (c !== 0x3a) {
    if (c === 0x20 || c === 0x09) fail400(`whitespace between a ${what} name and the colon`);
    if (c === 0x0d && b[i + 1] === 0x0a) fail400(i === pos ? `empty ${what} line` : `${what} line without a colon`);
    fail400(`invalid ${describeChar(c)} in a ${what} name`);
  }
  if (i === pos) fail400(`empty ${what} name`);
  const name = fieldName(b, s, pos, i, (kinds & 2) !== 0);
  let vs = i + 1;
  while ((c = b[vs]) === 0x20 || c === 0x09) vs++;
  // Up to the CR, every byte must be a field-vchar, SP or HTAB.
  let k = vs;
  while ((t = VALUE_SCAN[b[k]]) === 1) k++;
  if (t !== 2 || b[k + 1] !== 0x0a) fail400(`invalid ${describeChar(t === 2 ? 0x0d : b[k])} in the value of ${what} ${name}`);
  let ve = k;
  while (ve > vs && ((c = b[ve - 1]) === 0x20 || c === 0x09)) ve--;
  out.push(name, ve === vs ? '' : s.slice(vs, ve));
  return k + 2;
}

function decodeHead(buf: Buffer, headEnd: number): string {
  if (
    headEnd < 4 ||
    headEnd > buf.length ||
    buf[headEnd - 1] !== 0x0a ||
    buf[headEnd - 2] !== 0x0d ||
    buf[headEnd - 3] !== 0x0a ||
    buf[headEnd - 4] !== 0x0d
  ) {
    fail400('the head does not end with CRLF CRLF');
  }
  return (buf as Latin1Buffer).latin1Slice(0, headEnd);
}

/** The HTTP-version at b[start]: "HTTP/1.1" → 1, "HTTP/1.0" → 0, anything else → -1. */
function versionAt(b: Uint8Array, start: number): -1 | 0 | 1 {
  if (
    b[start] === 0x48 && // H
    b[start + 1] === 0x54 && // T
    b[start + 2] === 0x54 && // T
    b[start + 3] === 0x50 && // P
    b[start + 4] === 0x2f && // /
    b[start + 5] === 0x31 && // 1
    b[start + 6] === 0x2e // .
  ) {
    const minor = b[start + 7];
    if (minor === 0x31) return 1;
    if (minor === 0x30) return 0;
  }
  return -1;
}

/** Throws for a bad HTTP-version s[start..end): 505 if it looks like another version, else 400. */
function badVersion(s: string, start: number, end: number, line: string): never {
  if (HTTP_VERSION_LIKE.test(s.slice(start, end))) throw new H1ParseError(505, `unsupported HTTP version in the ${line}`);
  return fail400(`malformed ${line} (HTTP version)`);
}

// Connection option bits
const CONN_CLOSE = 1;
const CONN_KEEP_ALIVE = 2;
const CONN_UPGRADE = 4;

/**
 * Calls `item(a, b)` for each element of a comma-separated list value (RFC 9110 §5.6.1),
 * with `v.slice(a, b)` the element without its surrounding OWS; a === b for an empty one.
 */
function forEachListItem(v: string, item: (a: number, b: number) => void): void {
  const n = v.length;
  let p = 0;
  while (p <= n) {
    let q = v.indexOf(',', p);
    if (q === -1) q = n;
    let a = p;
    let b = q;
    let c = 0;
    while (a < b && ((c = v.charCodeAt(a)) === 0x20 || c === 0x09)) a++;
    while (b > a && ((c = v.charCodeAt(b - 1)) === 0x20 || c === 0x09)) b--;
    item(a, b);
    p = q + 1;
  }
}

/** Appends the lower-cased tokens of a Connection value to `out`; returns CONN_* bits. */
function connectionTokens(v: string, out: string[]): number {
  let bits = 0;
  forEachListItem(v, (a, b) => {
    if (a === b) return;
    let kinds = 0;
    for (let k = a; k < b; k++) {
      const t = TCHAR[v.charCodeAt(k)];
      if (t === 0) fail400('invalid token in Connection');
      kinds |= t;
    }
    let tok = v.slice(a, b);
    if ((kinds & 2) !== 0) tok = tok.toLowerCase();
    out.push(tok);
    if (tok === 'close') bits |= CONN_CLOSE;
    else if (tok === 'keep-alive') bits |= CONN_KEEP_ALIVE;
    else if (tok === 'upgrade') bits |= CONN_UPGRADE;
  });
  return bits;
}

/** Content-Length: 1 to 15 DIGITs, nothing else. */
function contentLengthValue(v: string): number {
  const n = v.length;
  if (n === 0 || n > 15) fail400(n === 0 ? 'empty Content-Length' : 'Content-Length too large');
  let r = 0;
  for (let k = 0; k < n; k++) {
    const d = v.charCodeAt(k) - 0x30;
    if (d < 0 || d > 9) fail400('invalid Content-Length');
    r = r * 10 + d;
  }
  return r;
}

/**
 * Whether the last transfer coding of the (comma-joined) Transfer-Encoding value is chunked.
 * Requests: the only coding allowed is a single, final "chunked" (others → 501, empty list
 * elements and a repeated chunked → 400). Responses: a repeated chunked → 400, the rest is
 * reported (chunked last → true, otherwise the body runs until close).
 */
function transferEncodingChunked(v: string, request: boolean): boolean {
  if (v === 'chunked') return true;
  let chunkedCount = 0;
  let other = false;
  let empty = false;
  let last = '';
  forEachListItem(v, (a, b) => {
    if (a === b) {
      empty = true;
      return;
    }
    last = v.slice(a, b).toLowerCase();
    if (last === 'chunked') chunkedCount++;
    else other = true;
  });
  if (chunkedCount > 1) fail400('chunked applied more than once in Transfer-Encoding');
  if (request) {
    if (other) throw new H1ParseError(501, 'unsupported transfer coding in Transfer-Encoding');
    if (empty || last !== 'chunked') fail400('malformed Transfer-Encoding');
  }
  return last === 'chunked';
}

/**
 * Whether the whitespace that ends the field line before `lineEnd` (just past its CRLF)
 * holds an HTAB. The framing headers are refused with one, as strict llhttp does
 * (`chunked\t` is not chunked to it, and `5\t` not a length): a value that one parser
 * trims and another does not is how a body's framing is hidden from one of two proxies.
 */
function htabBeforeCr(b: Uint8Array, lineEnd: number): boolean {
  let k = lineEnd - 3;
  let c = 0;
  while ((c = b[k]) === 0x20 || c === 0x09) {
    if (c === 0x09) return true;
    k--;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Header section scan, shared by requests and responses. The results go to this module-level
// scratch (parsing is synchronous), so a parse allocates only the strings and the result.

const scratch = {
  contentLength: undefined as number | undefined,
  transferEncoding: undefined as string | undefined,
  hosts: 0,
  host: undefined as string | undefined,
  upgradeHeader: false,
  expectContinue: false,
  connection: 0,
};

/** Parses the field lines from `pos` to the final empty line into `headers` / `tokens`; fills `scratch`. */
function scanFields(b: Buffer, s: string, pos: number, headers: string[], tokens: string[], request: boolean): void {
  const sc = scratch;
  sc.contentLength = undefined;
  sc.transferEncoding = undefined;
  sc.hosts = 0;
  sc.host = undefined;
  sc.upgradeHeader = false;
  sc.expectContinue = false;
  sc.connection = 0;
  const what = request ? 'header' : 'response header';
  let count = 0;
  for (;;) {
    if (b[pos] === 0x0d) {
      if (b[pos + 1] !== 0x0a) fail400('bare CR in the head');
      pos += 2;
      break;
    }
    if (++count > MAX_HEADER_FIELDS) throw new H1ParseError(431, `more than ${MAX_HEADER_FIELDS} header fields`);
    pos = parseFieldLine(b, s, pos, headers, what);
    const name = headers[headers.length - 2];
    switch (name.length) {
      case 4:
        if (name === 'host') {
          sc.hosts++;
          sc.host = headers[headers.length - 1];
        }
        break;
      case 6:
        if (name === 'expect') {
          const v = headers[headers.length - 1];
          if (v === '100-continue' || (v.length === 12 && v.toLowerCase() === '100-continue')) sc.expectContinue = true;
        }
        break;
      case 7:
        if (name === 'upgrade') sc.upgradeHeader = true;
        break;
      case 10:
        if (name === 'connection') sc.connection |= connectionTokens(headers[headers.length - 1], tokens);
        break;
      case 14:
        if (name === 'content-length') {
          if (htabBeforeCr(b, pos)) fail400('HTAB after the Content-Length value');
          if (sc.contentLength !== undefined) fail400('duplicate Content-Length');
          sc.contentLength = contentLengthValue(headers[headers.length - 1]);
        }
        break;
      case 17:
        if (name === 'transfer-encoding') {
          if (htabBeforeCr(b, pos)) fail400('HTAB after the Transfer-Encoding value');
          const v = headers[headers.length - 1];
          sc.transferEncoding = sc.transferEncoding === undefined ? v : `${sc.transferEncoding},${v}`;
        }
        break;
    }
  }
  if (pos !== s.length) fail400('an empty line inside the head');
}

/** Parses a request head: buf[0..headEnd) is the whole head including the final CRLFCRLF. */
export function parseRequestHead(buf: Buffer, headEnd: number): RequestHead {
  const s = decodeHead(buf, headEnd);
  const b = buf;
  // RFC 9112 §2.2: empty lines before the request-line are ignored (as llhttp does). They
  // must leave the head's final CRLFCRLF, the sentinel every scan below stops at.
  let pos = skipEmptyLines(b, 0);
  if (pos > headEnd - 4) fail400('no request line');

  // method SP request-target SP HTTP-version CRLF (every scan stops at a CR at the latest)
  let i = pos;
  while (TCHAR[b[i]] !== 0) i++;
  if (i === pos || b[i] !== 0x20) fail400('malformed request line (method)');
  const method = s.slice(pos, i);
  const ts = ++i;
  let c = 0;
  while ((c = b[i]) >= 0x21 && c <= 0x7e) i++;
  if (i === ts || c !== 0x20) {
    fail400(i === ts ? 'malformed request line (request-target)' : `invalid ${describeChar(c)} in the request-target`);
  }
  const target = s.slice(ts, i);
  const form = parseRequestTarget(method, target);
  i++;
  const v = versionAt(b, i);
  if (v < 0 || b[i + 8] !== 0x0d || b[i + 9] !== 0x0a) badVersion(s, i, s.indexOf('\r\n', i), 'request line');
  const versionMinor = v as 0 | 1;
  pos = i + 10;

  const headers: string[] = [];
  const tokens: string[] = [];
  scanFields(b, s, pos, headers, tokens, true);
  const sc = scratch;

  if (sc.hosts > 1) fail400('more than one Host');
  if (sc.hosts === 0 && versionMinor === 1) fail400('HTTP/1.1 request without Host');
  let chunked = false;
  if (sc.transferEncoding !== undefined) {
    if (versionMinor === 0) fail400('Transfer-Encoding in an HTTP/1.0 request');
    if (sc.contentLength !== undefined) fail400('both Content-Length and Transfer-Encoding');
    chunked = transferEncodingChunked(sc.transferEncoding, true);
  }
  const conn = sc.connection;
  return {
    method,
    target,
    path: form.path,
    authority: form.authority ?? sc.host ?? '',
    versionMinor,
    headers,
    contentLength: sc.contentLength,
    chunked,
    keepAlive: (conn & CONN_CLOSE) === 0 && (versionMinor === 1 || (conn & CONN_KEEP_ALIVE) !== 0),
    // RFC 9110 §7.8 and §10.1.1: Upgrade and 100-continue are ignored in HTTP/1.0 requests.
    upgrade: versionMinor === 1 && (conn & CONN_UPGRADE) !== 0 && sc.upgradeHeader,
    expectContinue: versionMinor === 1 && sc.expectContinue,
    connectionTokens: tokens,
  };
}

/** Parses a response head: buf[0..headEnd) is the whole head including the final CRLFCRLF. */
export function parseResponseHead(buf: Buffer, headEnd: number): ResponseHead {
  const s = decodeHead(buf, headEnd);
  const b = buf;

  // HTTP-version SP 3DIGIT [SP reason-phrase] CRLF
  const v = versionAt(b, 0);
  if (v < 0 || b[8] !== 0x20) {
    const eol = s.indexOf('\r\n');
    let sp = s.indexOf(' ');
    if (sp === -1 || sp > eol) sp = eol;
    if (v >= 0 && sp === 8) fail400('malformed status line (status code)');
    badVersion(s, 0, sp, 'status line');
  }
  const versionMinor = v as 0 | 1;
  const d0 = b[9] - 0x30;
  const d1 = b[10] - 0x30;
  const d2 = b[11] - 0x30;
  if (!(d0 >= 1 && d0 <= 9 && d1 >= 0 && d1 <= 9 && d2 >= 0 && d2 <= 9)) fail400('malformed status line (status code)');
  const status = d0 * 100 + d1 * 10 + d2;
  let reason = '';
  let eol = 12;
  let c = b[12];
  if (c === 0x20) {
    eol = 13;
    while ((c = b[eol]) !== 0x0d) {
      if (FIELD_CHAR[c] === 0) fail400(`invalid ${describeChar(c)} in the reason phrase`);
      eol++;
    }
    reason = s.slice(13, eol);
  } else if (c !== 0x0d) {
    fail400('malformed status line (status code)');
  }
  if (b[eol + 1] !== 0x0a) fail400('bare CR in the status line');

  const headers: string[] = [];
  const tokens: string[] = [];
  scanFields(b, s, eol + 2, headers, tokens, false);
  const sc = scratch;

  let contentLength = sc.contentLength;
  let chunked = false;
  let framingSuspect = false;
  if (sc.transferEncoding !== undefined) {
    // RFC 9112 §6.1 and §6.3: Transfer-Encoding wins over Content-Length; such a response, and
    // one with Transfer-Encoding in HTTP/1.0, is not followed by another on this connection.
    framingSuspect = contentLength !== undefined || versionMinor === 0;
    contentLength = undefined;
    chunked = transferEncodingChunked(sc.transferEncoding, false);
  }
  const conn = sc.connection;
  return {
    status,
    reason,
    versionMinor,
    headers,
    contentLength,
    chunked,
    keepAlive: !framingSuspect && (conn & CONN_CLOSE) === 0 && (versionMinor === 1 || (conn & CONN_KEEP_ALIVE) !== 0),
    connectionTokens: tokens,
  };
}
