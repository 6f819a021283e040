import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findHeadEnd, parseRequestHead, parseResponseHead, skipEmptyLines, MAX_HEAD_BYTES_DEFAULT, type RequestHead, type ResponseHead } from './head-parser';
import { H1ParseError } from './parse-error';

function req(head: string): RequestHead {
  const buf = Buffer.from(head, 'latin1');
  return parseRequestHead(buf, buf.length);
}

function res(head: string): ResponseHead {
  const buf = Buffer.from(head, 'latin1');
  return parseResponseHead(buf, buf.length);
}

function rejects(parse: () => unknown, status: number, reason?: RegExp): void {
  assert.throws(parse, (err: unknown) => {
    assert.ok(err instanceof H1ParseError, `expected H1ParseError, got ${String(err)}`);
    assert.equal(err.code, 'ERR_NM_HTTP_PARSE');
    assert.equal(err.status, status, `status for: ${err.reason}`);
    if (reason) assert.match(err.reason, reason);
    return true;
  });
}

const rejectsReq = (head: string, status: number, reason?: RegExp): void => rejects(() => req(head), status, reason);
const rejectsRes = (head: string, status: number, reason?: RegExp): void => rejects(() => res(head), status, reason);

/** A request head with the given header lines. */
const get = (...lines: string[]): string => `GET / HTTP/1.1\r\nHost: a\r\n${lines.map((l) => `${l}\r\n`).join('')}\r\n`;
const post = (...lines: string[]): string => `POST /p HTTP/1.1\r\nHost: a\r\n${lines.map((l) => `${l}\r\n`).join('')}\r\n`;
const ok200 = (...lines: string[]): string => `HTTP/1.1 200 OK\r\n${lines.map((l) => `${l}\r\n`).join('')}\r\n`;

test('findHeadEnd finds the end of the head, also when CRLFCRLF is split across reads', () => {
  assert.equal(MAX_HEAD_BYTES_DEFAULT, 16384);
  const full = Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY');
  const end = full.indexOf('BODY');
  assert.equal(findHeadEnd(full, 0), end);
  assert.equal(findHeadEnd(full.subarray(0, end - 1), 0), -1);
  // Every split point: the first read has `cut` bytes, the rescan starts at cut - 3 (negative: from 0).
  for (let cut = 0; cut < end; cut++) {
    assert.equal(findHeadEnd(full.subarray(0, cut), -3), -1, `first read of ${cut}`);
    assert.equal(findHeadEnd(full, cut - 3), end, `rescan after ${cut}`);
  }
  assert.equal(findHeadEnd(full.subarray(0, end), -3), end);
  // `from` past the CRLFCRLF does not see it; a later one is found.
  const two = Buffer.from('a\r\n\r\nb\r\n\r\n');
  assert.equal(findHeadEnd(two, 0), 5);
  assert.equal(findHeadEnd(two, 2), 10);
  assert.equal(findHeadEnd(two, 6), 10);
  assert.equal(findHeadEnd(two, 7), -1);
  assert.equal(findHeadEnd(two, 100), -1);
  assert.equal(findHeadEnd(Buffer.from('a\n\n\r\n\r'), 0), -1, 'bare LFs do not end a head');
  // A negative `from` must not count from the end of the buffer.
  assert.equal(findHeadEnd(Buffer.from('\r\n\r\nxxxxxxxxxx'), -3), 4);
});

test('a typical request head', () => {
  const h = req(
    'GET /a/b?c=1&d=%20 HTTP/1.1\r\n' +
      'Host: svc.ns.svc.cluster.local:8080\r\n' +
      'User-Agent: curl/8.5.0\r\n' +
      'Accept: */*\r\n' +
      'X-Request-Id:abc\r\n' +
      '\r\n',
  );
  assert.equal(h.method, 'GET');
  assert.equal(h.target, '/a/b?c=1&d=%20');
  assert.equal(h.versionMinor, 1);
  assert.deepEqual(h.headers, ['host', 'svc.ns.svc.cluster.local:8080', 'user-agent', 'curl/8.5.0', 'accept', '*/*', 'x-request-id', 'abc']);
  assert.equal(h.contentLength, undefined);
  assert.equal(h.chunked, false);
  assert.equal(h.keepAlive, true);
  assert.equal(h.upgrade, false);
  assert.equal(h.expectContinue, false);
  assert.deepEqual(h.connectionTokens, []);
});

test('only the head is parsed when the buffer holds more bytes', () => {
  const buf = Buffer.from('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET');
  const h = parseRequestHead(buf, findHeadEnd(buf, 0));
  assert.equal(h.contentLength, 3);
  assert.deepEqual(h.headers, ['host', 'a', 'content-length', '3']);
});

test('names are lower-cased, values OWS-trimmed, order and duplicates kept, empty values allowed', () => {
  const h = req(get('X-B: \t one two \t', 'x-a:two', 'X-B:   three', 'x-empty:', 'X-Empty2:  \t ', 'ACCEPT: Text/HTML', "x-tok!#$%&'*+-.^_`|~09: v"));
  assert.deepEqual(h.headers, [
    'host', 'a',
    'x-b', 'one two',
    'x-a', 'two',
    'x-b', 'three',
    'x-empty', '',
    'x-empty2', '',
    'accept', 'Text/HTML',
    "x-tok!#$%&'*+-.^_`|~09", 'v',
  ]);
});

test('obs-text in values and a HTAB inside values are kept as latin1', () => {
  const h = req(get('x-latin: caf\xe9\tbar'));
  assert.equal(h.headers[3], 'caf\xe9\tbar');
});

test('the request line is strict', () => {
  assert.equal(req('OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n').target, '*');
  assert.equal(req('CONNECT a.b:443 HTTP/1.1\r\nHost: a.b:443\r\n\r\n').target, 'a.b:443');
  assert.equal(req('GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\n').target, 'http://a/x');
  assert.equal(req('M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n').method, 'M-SEARCH');
  assert.equal(req('get / HTTP/1.1\r\nHost: a\r\n\r\n').method, 'get', 'the method is kept as sent');
  assert.equal(req('PURGE /c HTTP/1.1\r\nHost: a\r\n\r\n').method, 'PURGE');
  for (const line of [
    'GET  / HTTP/1.1',
    'GET /  HTTP/1.1',
    ' GET / HTTP/1.1',
    'GET\t/ HTTP/1.1',
    'GET / HTTP/1.1 ',
    'GET /a b HTTP/1.1',
    'GET / http/1.1',
    'GET / HTTP/1.1x',
    'GET / HTTP/1',
    'GET / HTTP/1.',
    'GET / HTTP/11',
    'GET /',
    'GET',
    'GE(T / HTTP/1.1',
    'G\x00T / HTTP/1.1',
    'GET /\x7f HTTP/1.1',
    'GET /\xe9 HTTP/1.1',
    'GET /\x01 HTTP/1.1',
    '',
  ]) {
    rejectsReq(`${line}\r\nHost: a\r\n\r\n`, 400);
  }
});

test('empty lines before the request line are ignored, any number of CRLF or bare LF (as llhttp)', () => {
  for (const before of ['\r\n', '\r\n\r\n', '\n\n', '\r\n\n\r\n\r\n']) {
    const h = req(`${before}GET /x HTTP/1.1\r\nHost: a\r\n\r\n`);
    assert.equal(h.method, 'GET', JSON.stringify(before));
    assert.equal(h.path, '/x');
  }
  rejectsReq('\r\n\r\n', 400, /no request line/);
  rejectsReq('\rGET / HTTP/1.1\r\nHost: a\r\n\r\n', 400);
  // The server drops them before looking for the end of the head.
  const buf = Buffer.from('\r\n\r\n\nGET / HTTP/1.1\r\n');
  assert.equal(skipEmptyLines(buf, 0), 5);
  assert.equal(skipEmptyLines(buf, 5), 5);
  assert.equal(skipEmptyLines(Buffer.from('\r\n\r'), 0), 2, 'a CR at the end may be the start of a CRLF');
  assert.equal(skipEmptyLines(Buffer.from('\r\n'), 0), 2);
  assert.equal(skipEmptyLines(Buffer.from('\r\r\n'), 0), 0);
});

test('an absolute-form target gives the path and the authority (RFC 9112 §3.2.2): Host is not used', () => {
  const h = req('GET http://other.test/admin?x=1 HTTP/1.1\r\nHost: svc.local\r\n\r\n');
  assert.equal(h.target, 'http://other.test/admin?x=1', 'the target as sent');
  assert.equal(h.path, '/admin?x=1');
  assert.equal(h.authority, 'other.test');
  assert.deepEqual(h.headers, ['host', 'svc.local'], 'the headers are as sent');
  const cases: Array<[string, string, string, string?]> = [
    // target, path, authority, method
    ['HTTP://Other.Test:8080/a/b', '/a/b', 'Other.Test:8080'],
    ['https://o.test/x', '/x', 'o.test'],
    ['http://o.test', '/', 'o.test'],
    ['http://o.test?q=1', '/?q=1', 'o.test'],
    ['http://[::1]:80/x', '/x', '[::1]:80'],
    ['http://10.0.0.1/', '/', '10.0.0.1'],
    ['http://o.test:8001', '*', 'o.test:8001', 'OPTIONS'],
    ['http://o.test/p', '/p', 'o.test', 'OPTIONS'],
  ];
  for (const [target, path, authority, method = 'GET'] of cases) {
    const r = req(`${method} ${target} HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.equal(r.path, path, target);
    assert.equal(r.authority, authority, target);
  }
  // Origin-form: the authority is Host's.
  const o = req('GET /a?b HTTP/1.1\r\nHost: svc.local:80\r\n\r\n');
  assert.equal(o.path, '/a?b');
  assert.equal(o.authority, 'svc.local:80');
  assert.equal(req('GET / HTTP/1.0\r\n\r\n').authority, '');
  assert.equal(req('OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n').path, '*');
  const c = req('CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\n');
  assert.equal(c.authority, 'db.internal:5432');
});

test('malformed request-targets are 400', () => {
  for (const [method, target] of [
    ['GET', 'http://'],
    ['GET', 'http:///admin'],
    ['GET', 'http://:80/admin'],
    ['GET', 'http://user@other.test/admin'],
    ['GET', 'http://user:pw@other.test/'],
    ['GET', 'http://o.test:port/x'],
    ['GET', 'http://o.test:123456/x'],
    ['GET', 'http://o{t}/x'],
    ['GET', 'http:/o.test/x'],
    ['GET', 'ftp://o.test/x'],
    ['GET', 'o.test/admin'],
    ['GET', 'admin'],
    ['GET', '/admin#frag'],
    ['GET', 'http://o.test/admin#x'],
    ['CONNECT', 'db.internal'],
    ['CONNECT', '/x'],
    ['CONNECT', 'u@db:5432'],
  ]) {
    rejectsReq(`${method} ${target} HTTP/1.1\r\nHost: a\r\n\r\n`, 400);
  }
});

test('another HTTP version is 505', () => {
  rejectsReq('GET / HTTP/2.0\r\nHost: a\r\n\r\n', 505);
  rejectsReq('GET / HTTP/1.2\r\nHost: a\r\n\r\n', 505);
  rejectsReq('GET / HTTP/0.9\r\nHost: a\r\n\r\n', 505);
  rejectsReq('GET / HTTP/3\r\nHost: a\r\n\r\n', 505);
  rejectsRes('HTTP/2.0 200 OK\r\n\r\n', 505);
  rejectsRes('HTTP/1.9 200 OK\r\n\r\n', 505);
});

test('HTTP/1.0 requests', () => {
  const h = req('GET / HTTP/1.0\r\n\r\n');
  assert.equal(h.versionMinor, 0);
  assert.deepEqual(h.headers, []);
  assert.equal(h.keepAlive, false);
  assert.equal(req('GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n').keepAlive, true);
  assert.equal(req('GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n').keepAlive, false);
  assert.equal(req('GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n').keepAlive, false);
  // Upgrade and 100-continue are ignored in HTTP/1.0 (RFC 9110 §7.8, §10.1.1).
  const u = req('GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\nExpect: 100-continue\r\n\r\n');
  assert.equal(u.upgrade, false);
  assert.equal(u.expectContinue, false);
});

test('keep-alive rules for HTTP/1.1', () => {
  assert.equal(req(get()).keepAlive, true);
  assert.equal(req(get('Connection: keep-alive')).keepAlive, true);
  assert.equal(req(get('Connection: close')).keepAlive, false);
  assert.equal(req(get('Connection: CLOSE')).keepAlive, false);
  assert.equal(req(get('Connection: x-foo, Close')).keepAlive, false);
  assert.equal(req(get('Connection: x-foo', 'Connection: close')).keepAlive, false);
  assert.equal(req(get('Connection: closed')).keepAlive, true, 'a token, not a substring');
  assert.equal(req(get('x-connection: close')).keepAlive, true);
  assert.equal(res(ok200()).keepAlive, true);
  assert.equal(res(ok200('connection: close')).keepAlive, false);
  assert.equal(res('HTTP/1.0 200 OK\r\n\r\n').keepAlive, false);
  assert.equal(res('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n').keepAlive, true);
});

test('connection tokens come from every Connection header, trimmed and lower-cased', () => {
  const h = req(get('Connection: Keep-Alive , X-Trace,,\tupgrade', 'x: y', 'connection: TE'));
  assert.deepEqual(h.connectionTokens, ['keep-alive', 'x-trace', 'upgrade', 'te']);
  assert.deepEqual(req(get('Connection:')).connectionTokens, []);
  assert.deepEqual(res(ok200('Connection: X-A, x-b')).connectionTokens, ['x-a', 'x-b']);
  rejectsReq(get('Connection: a b'), 400);
  rejectsReq(get('Connection: a/b'), 400);
});

test('upgrade needs both Connection: upgrade and an Upgrade header', () => {
  assert.equal(req(get('Connection: Upgrade', 'Upgrade: websocket')).upgrade, true);
  assert.equal(req(get('Upgrade: websocket', 'Connection: keep-alive, upgrade')).upgrade, true);
  assert.equal(req(get('Upgrade: websocket')).upgrade, false);
  assert.equal(req(get('Connection: upgrade')).upgrade, false);
  assert.equal(req(get('Connection: upgraded', 'Upgrade: h2c')).upgrade, false);
});

test('Expect: 100-continue', () => {
  assert.equal(req(post('Content-Length: 5', 'Expect: 100-continue')).expectContinue, true);
  assert.equal(req(post('Content-Length: 5', 'expect:  100-Continue ')).expectContinue, true);
  assert.equal(req(post('Content-Length: 5', 'Expect: 200-ok')).expectContinue, false);
  assert.equal(req(post('Content-Length: 5')).expectContinue, false);
});

test('line endings: bare LF or bare CR anywhere in the head is 400', () => {
  for (const head of [
    'GET / HTTP/1.1\nHost: a\r\n\r\n',
    'GET / HTTP/1.1\rHost: a\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: a\r\nX: y\n\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: a\r\nX: y\r\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: a\r\n\nX: y\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: a\r\n\rX: y\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: a\r\nX\n: y\r\n\r\n',
    'GET /\n HTTP/1.1\r\nHost: a\r\n\r\n',
    'GET / HTTP/1.1\r\r\nHost: a\r\n\r\n',
    'GET / HTTP/1.1\rXHost: a\r\n\r\n',
    'GET / HTTP/1.1\r\nX: a\rXHost: a\r\n\r\n',
  ]) {
    rejectsReq(head, 400);
  }
  rejectsRes('HTTP/1.1 200 OK\nX: y\r\n\r\n', 400);
  rejectsRes('HTTP/1.1 200 O\rK\r\n\r\n', 400);
  rejectsRes('HTTP/1.1 200 OK\r\nX: \ry\r\n\r\n', 400);
  rejectsRes('HTTP/1.1 200 OK\rXContent-Length: 1\r\n\r\n', 400);
  rejectsRes('HTTP/1.1 200\rXContent-Length: 1\r\n\r\n', 400);
});

test('the head must be exactly what the caller said', () => {
  const buf = Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
  rejects(() => parseRequestHead(buf, buf.length - 1), 400);
  const twice = Buffer.from('GET / HTTP/1.1\r\n\r\nHost: a\r\n\r\n');
  rejects(() => parseRequestHead(twice, twice.length), 400, /empty line/);
});

test('header field syntax', () => {
  rejectsReq(get('X-Folded: a', ' b'), 400, /obs-fold/);
  rejectsReq(get('X-Folded: a', '\tb'), 400, /obs-fold/);
  rejectsReq(get('X-Space : a'), 400, /whitespace/);
  rejectsReq(get('X-Tab\t: a'), 400, /whitespace/);
  rejectsReq(get('Content-Length : 0'), 400);
  rejectsReq(get(': no name'), 400);
  rejectsReq(get('no colon'), 400);
  rejectsReq(get('x(y): z'), 400);
  rejectsReq(get('x\xe9: z'), 400);
  rejectsReq(get('x@y: z'), 400);
  rejectsReq(get('x-nul: a\x00b'), 400);
  rejectsReq(get('x-nul: \x00'), 400);
  rejectsReq(get('x-ctl: a\x01b'), 400);
  rejectsReq(get('x-esc: a\x1bb'), 400);
  rejectsReq(get('x-del: a\x7f'), 400);
  rejectsReq(get('x-vt: \x0b'), 400);
  rejectsRes(ok200('x-nul: a\x00b'), 400);
  rejectsRes(ok200(' folded'), 400, /obs-fold/);
  rejectsRes(ok200('X-Space : a'), 400, /whitespace/);
});

test('Content-Length', () => {
  assert.equal(req(post('Content-Length: 0')).contentLength, 0);
  assert.equal(req(post('content-length:  12345 ')).contentLength, 12345);
  assert.equal(req(post('Content-Length: 007')).contentLength, 7);
  assert.equal(req(post('Content-Length: 999999999999999')).contentLength, 999999999999999);
  for (const v of ['+5', '-5', '5,5', '5, 5', ' 5 5', '5 5', '0x5', '5.0', '1e3', 'five', '', '\t', '1000000000000000', '５']) {
    rejectsReq(post(`Content-Length: ${v}`), 400);
    rejectsRes(ok200(`Content-Length: ${v}`), 400);
  }
});

test('more than one Content-Length is 400, even with the same value', () => {
  rejectsReq(post('Content-Length: 5', 'Content-Length: 5'), 400, /duplicate Content-Length/);
  rejectsReq(post('Content-Length: 5', 'content-length: 6'), 400, /duplicate Content-Length/);
  rejectsRes(ok200('Content-Length: 5', 'Content-Length: 5'), 400, /duplicate Content-Length/);
});

test('Transfer-Encoding in requests', () => {
  const h = req(post('Transfer-Encoding: chunked'));
  assert.equal(h.chunked, true);
  assert.equal(h.contentLength, undefined);
  assert.equal(req(post('transfer-encoding:  Chunked ')).chunked, true);
  assert.equal(req(post('Transfer-Encoding: CHUNKED')).chunked, true);
  rejectsReq(post('Transfer-Encoding: gzip'), 501);
  rejectsReq(post('Transfer-Encoding: gzip, chunked'), 501);
  rejectsReq(post('Transfer-Encoding: gzip', 'Transfer-Encoding: chunked'), 501);
  rejectsReq(post('Transfer-Encoding: identity'), 501);
  rejectsReq(post('Transfer-Encoding: chunked, gzip'), 501);
  rejectsReq(post('Transfer-Encoding: chunked;q=1'), 501);
  rejectsReq(post('Transfer-Encoding: xchunked'), 501);
  rejectsReq(post('Transfer-Encoding: chunked, chunked'), 400);
  rejectsReq(post('Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'), 400);
  rejectsReq(post('Transfer-Encoding: chunked,'), 400);
  rejectsReq(post('Transfer-Encoding: ,chunked'), 400);
  rejectsReq(post('Transfer-Encoding:'), 400);
  rejectsReq(post('Transfer-Encoding: "chunked"'), 501);
});

test('an HTAB after a Transfer-Encoding or Content-Length value is 400 (strict llhttp: chunked\\t is not chunked)', () => {
  rejectsReq(post('Transfer-Encoding: chunked\t'), 400, /HTAB after the Transfer-Encoding/);
  rejectsReq(post('Transfer-Encoding: chunked \t '), 400, /HTAB after the Transfer-Encoding/);
  rejectsReq(post('Content-Length: 5\t'), 400, /HTAB after the Content-Length/);
  rejectsRes(ok200('Transfer-Encoding: chunked\t'), 400, /HTAB after the Transfer-Encoding/);
  // SP after the value, and HTAB before it, are OWS llhttp accepts too.
  assert.equal(req(post('Transfer-Encoding: chunked ')).chunked, true);
  assert.equal(req(post('Transfer-Encoding:\tchunked')).chunked, true);
  assert.equal(req(post('Content-Length:\t5 ')).contentLength, 5);
  assert.equal(req(get('x-other: v\t')).headers[3], 'v', 'other fields are trimmed as before');
});

test('Transfer-Encoding in an HTTP/1.0 request is 400', () => {
  rejectsReq('POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n', 400);
  rejectsReq('POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n', 400);
});

test('Content-Length and Transfer-Encoding together in a request is 400 (smuggling)', () => {
  rejectsReq(post('Content-Length: 5', 'Transfer-Encoding: chunked'), 400, /Content-Length and Transfer-Encoding/);
  rejectsReq(post('Transfer-Encoding: chunked', 'Content-Length: 0'), 400, /Content-Length and Transfer-Encoding/);
});

test('Host: exactly one in HTTP/1.1 requests, at most one in HTTP/1.0', () => {
  rejectsReq('GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400, /Host/);
  rejectsReq('GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n', 400, /Host/);
  rejectsReq('GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n', 400, /Host/);
  rejectsReq('GET / HTTP/1.1\r\nX-Host: a\r\n\r\n', 400, /without Host/);
  rejectsReq('GET / HTTP/1.1\r\n\r\n', 400, /without Host/);
  assert.deepEqual(req('GET / HTTP/1.1\r\nHost:\r\n\r\n').headers, ['host', '']);
  assert.equal(req('GET / HTTP/1.0\r\n\r\n').versionMinor, 0);
  assert.equal(res(ok200()).status, 200, 'responses need no Host');
});

test('at most 256 header fields (431)', () => {
  const lines = (n: number): string[] => Array.from({ length: n }, (_, i) => `x-h${i}: ${i}`);
  assert.equal(req(get(...lines(255))).headers.length, 512);
  rejectsReq(get(...lines(256)), 431);
  assert.equal(res(ok200(...lines(256))).headers.length, 512);
  rejectsRes(ok200(...lines(257)), 431);
});

test('status lines', () => {
  const r = res('HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\n');
  assert.equal(r.status, 404);
  assert.equal(r.reason, 'Not Found');
  assert.equal(r.versionMinor, 1);
  assert.equal(r.contentLength, 9);
  assert.deepEqual(r.headers, ['content-length', '9']);
  assert.equal(res('HTTP/1.0 200 OK\r\n\r\n').versionMinor, 0);
  assert.equal(res('HTTP/1.1 200\r\n\r\n').reason, '', 'a missing reason is tolerated');
  assert.equal(res('HTTP/1.1 200 \r\n\r\n').reason, '');
  assert.equal(res('HTTP/1.1 999 x\r\n\r\n').status, 999);
  assert.equal(res('HTTP/1.1 100 Continue\r\n\r\n').status, 100);
  assert.equal(res('HTTP/1.1 200 Very\tOK caf\xe9 (!)\r\n\r\n').reason, 'Very\tOK caf\xe9 (!)');
  for (const line of [
    'HTTP/1.1 20 OK',
    'HTTP/1.1 2000 OK',
    'HTTP/1.1 099 OK',
    'HTTP/1.1 2x0 OK',
    'HTTP/1.1  200 OK',
    'HTTP/1.1 200\tOK',
    'HTTP/1.1 200OK',
    'HTTP/1.1',
    'HTTP/1.1 ',
    'http/1.1 200 OK',
    'HTTP/1.1 200 O\x00K',
    'HTTP/1.1 200 O\x7fK',
    'ICY 200 OK',
    '',
  ]) {
    rejectsRes(`${line}\r\n\r\n`, 400);
  }
});

test('Transfer-Encoding in responses', () => {
  const r = res(ok200('Transfer-Encoding: chunked'));
  assert.equal(r.chunked, true);
  assert.equal(r.contentLength, undefined);
  assert.equal(r.keepAlive, true);
  const gz = res(ok200('Transfer-Encoding: gzip, chunked'));
  assert.equal(gz.chunked, true);
  // TE without chunked last: read until close, reported as chunked=false, no length.
  const close = res(ok200('Transfer-Encoding: gzip', 'Content-Length: 10'));
  assert.equal(close.chunked, false);
  assert.equal(close.contentLength, undefined);
  assert.equal(res(ok200('Transfer-Encoding: chunked, gzip')).chunked, false);
  rejectsRes(ok200('Transfer-Encoding: chunked, chunked'), 400);
});

test('a response with Content-Length and Transfer-Encoding: TE wins, and the connection is not reused', () => {
  const r = res(ok200('Content-Length: 10', 'Transfer-Encoding: chunked'));
  assert.equal(r.chunked, true);
  assert.equal(r.contentLength, undefined);
  assert.equal(r.keepAlive, false);
  const old = res('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n');
  assert.equal(old.chunked, true);
  assert.equal(old.keepAlive, false);
});

test('every head is a fresh result (no state leaks between parses)', () => {
  const a = req(post('Content-Length: 5', 'Connection: close', 'Expect: 100-continue'));
  const b = req(get());
  assert.equal(a.contentLength, 5);
  assert.equal(b.contentLength, undefined);
  assert.equal(b.keepAlive, true);
  assert.equal(b.expectContinue, false);
  assert.notEqual(a.headers, b.headers);
  assert.notEqual(a.connectionTokens, b.connectionTokens);
  // A failed parse does not affect the next one.
  rejectsReq(post('Content-Length: 5', 'Content-Length: 5'), 400);
  assert.equal(req(post('Content-Length: 6')).contentLength, 6);
});
