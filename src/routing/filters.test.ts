import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyHeaderModifier, applyUrlRewrite, hostWithoutPort, redirectLocation, replacePrefix, shouldMirror } from './filters';
import type { HeaderMap, HeaderModifier, MirrorSpec, Redirect, RouteMatch, UrlRewrite } from './types';

function mod(partial: Partial<HeaderModifier>): HeaderModifier {
  return { set: [], add: [], remove: [], ...partial };
}

test('set replaces every value of a header, whatever the spelling of its name', () => {
  const headers: HeaderMap = { 'x-env': 'dev', 'X-Env': 'other', accept: '*/*' };
  applyHeaderModifier(headers, mod({ set: [{ name: 'x-env', value: 'prod' }] }));
  assert.deepEqual(headers, { 'x-env': 'prod', accept: '*/*' });
  applyHeaderModifier(headers, mod({ set: [{ name: 'x-new', value: '1' }] }));
  assert.equal((headers as HeaderMap)['x-new'], '1');
});

test('add appends to the existing values (spec: my-header: foo,bar) or creates the header', () => {
  const headers: HeaderMap = { 'my-header': 'foo' };
  applyHeaderModifier(headers, mod({ add: [{ name: 'my-header', value: 'bar' }] }));
  assert.deepEqual(headers['my-header'], ['foo', 'bar']);
  applyHeaderModifier(headers, mod({ add: [{ name: 'my-header', value: 'baz' }] }));
  assert.deepEqual(headers['my-header'], ['foo', 'bar', 'baz']);
  const fresh: HeaderMap = { 'Other-Case': 'a' };
  applyHeaderModifier(fresh, mod({ add: [{ name: 'x-added', value: '1' }, { name: 'other-case', value: 'b' }] }));
  assert.deepEqual(fresh, { 'x-added': '1', 'other-case': ['a', 'b'] });
});

test('remove drops a header case-insensitively and ignores absent ones', () => {
  const headers: HeaderMap = { 'x-secret': 's', 'X-SECRET': 't', keep: 'k' };
  applyHeaderModifier(headers, mod({ remove: ['x-secret', 'x-absent'] }));
  assert.deepEqual(headers, { keep: 'k' });
});

test('one filter applies remove, then set, then add', () => {
  const headers: HeaderMap = { a: '1', b: '2', c: '3' };
  applyHeaderModifier(headers, mod({ remove: ['a', 'b'], set: [{ name: 'b', value: 'B' }], add: [{ name: 'a', value: 'A' }, { name: 'c', value: 'C' }] }));
  assert.deepEqual(headers, { a: 'A', b: 'B', c: ['3', 'C'] });
});

const rw = (urlRewrite: UrlRewrite): Pick<RouteMatch, 'urlRewrite'> => ({ urlRewrite });

test('ReplacePrefixMatch: /api/v1/x with prefix /api removed gives /v1/x; the query is kept', () => {
  const strip = rw({ path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/', matchedPrefix: '/api' } });
  assert.deepEqual(applyUrlRewrite({ path: '/api/v1/x', host: 'b' }, strip), { path: '/v1/x', host: 'b' });
  assert.deepEqual(applyUrlRewrite({ path: '/api/v1/x?q=1&r=/api', host: 'b' }, strip), { path: '/v1/x?q=1&r=/api', host: 'b' });
  assert.deepEqual(applyUrlRewrite({ path: '/api', host: 'b' }, strip), { path: '/', host: 'b' });
  assert.deepEqual(applyUrlRewrite({ path: '/api?x', host: 'b' }, strip), { path: '/?x', host: 'b' });
  const empty = rw({ path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '', matchedPrefix: '/api' } });
  assert.equal(applyUrlRewrite({ path: '/api/v1/x', host: 'b' }, empty).path, '/v1/x');
});

test('ReplacePrefixMatch under prefix "/" prepends the replacement', () => {
  const root = rw({ path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/v2', matchedPrefix: '/' } });
  assert.equal(applyUrlRewrite({ path: '/api/v1/x', host: 'b' }, root).path, '/v2/api/v1/x');
  assert.equal(applyUrlRewrite({ path: '/x', host: 'b' }, root).path, '/v2/x');
  const rootSlash = rw({ path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/', matchedPrefix: '/' } });
  assert.equal(applyUrlRewrite({ path: '/api/v1/x', host: 'b' }, rootSlash).path, '/api/v1/x');
});

test("ReplacePrefixMatch follows the spec's table", () => {
  const table: Array<[string, string, string, string]> = [
    ['/foo/bar', '/foo', '/xyz', '/xyz/bar'],
    ['/foo/bar', '/foo', '/xyz/', '/xyz/bar'],
    ['/foo/bar', '/foo/', '/xyz', '/xyz/bar'],
    ['/foo/bar', '/foo/', '/xyz/', '/xyz/bar'],
    ['/foo', '/foo', '/xyz', '/xyz'],
    ['/foo/', '/foo', '/xyz', '/xyz/'],
    ['/foo/bar', '/foo', '', '/bar'],
    ['/foo/', '/foo', '', '/'],
    ['/foo', '/foo', '', '/'],
    ['/foo/', '/foo', '/', '/'],
    ['/foo', '/foo', '/', '/'],
  ];
  for (const [path, prefix, replacement, expected] of table) {
    assert.equal(replacePrefix(path, prefix, replacement), expected, `${path} ${prefix} -> ${replacement}`);
  }
  // Not under the prefix on an element boundary: left alone.
  assert.equal(replacePrefix('/foobar', '/foo', '/xyz'), '/foobar');
});

test('ReplaceFullPath replaces the whole path, keeps the query; hostname replaces Host', () => {
  const full = rw({ hostname: 'internal.example', path: { type: 'ReplaceFullPath', replaceFullPath: '/health' } });
  assert.deepEqual(applyUrlRewrite({ path: '/any/thing?x=1', host: 'b.demo:8080' }, full), { path: '/health?x=1', host: 'internal.example' });
  assert.deepEqual(applyUrlRewrite({ path: '/p', host: 'h' }, rw({ hostname: 'only.host' })), { path: '/p', host: 'only.host' });
  assert.deepEqual(applyUrlRewrite({ path: '/p', host: 'h' }, {}), { path: '/p', host: 'h' });
});

const rd = (redirect: Redirect): Pick<RouteMatch, 'redirect'> => ({ redirect });

test('redirect: an https scheme alone gives port 443, which is left out', () => {
  const out = redirectLocation({ path: '/a?b=1', host: 'b.demo:8080', scheme: 'http', port: 8080 }, rd({ scheme: 'https', statusCode: 301 }));
  assert.deepEqual(out, { status: 301, location: 'https://b.demo/a?b=1' });
});

test('redirect: no scheme and no port keep the request scheme and its port (the Service port)', () => {
  assert.equal(redirectLocation({ path: '/a', host: 'b.demo:8080', scheme: 'http', port: 8080 }, rd({ hostname: 'c.demo', statusCode: 302 })).location, 'http://c.demo:8080/a');
  assert.equal(redirectLocation({ path: '/a', host: 'b.demo', scheme: 'http', port: 80 }, rd({ statusCode: 302 })).location, 'http://b.demo/a');
  assert.equal(redirectLocation({ path: '/a', host: 'b.demo', scheme: 'https', port: 443 }, rd({ statusCode: 302 })).location, 'https://b.demo/a');
  assert.equal(redirectLocation({ path: '/a', host: 'b.demo', scheme: 'http' }, rd({ statusCode: 302 })).location, 'http://b.demo/a');
});

test('redirect: an explicit port is written unless it is the scheme default', () => {
  assert.equal(redirectLocation({ path: '/', host: 'b', scheme: 'http', port: 80 }, rd({ port: 8443, scheme: 'https', statusCode: 302 })).location, 'https://b:8443/');
  assert.equal(redirectLocation({ path: '/', host: 'b:9000', scheme: 'http', port: 9000 }, rd({ port: 80, statusCode: 302 })).location, 'http://b/');
  assert.equal(redirectLocation({ path: '/', host: 'b', scheme: 'https', port: 443 }, rd({ port: 80, statusCode: 302 })).location, 'https://b:80/');
  assert.equal(redirectLocation({ path: '/', host: 'b', scheme: 'https', port: 8443 }, rd({ scheme: 'http', statusCode: 307 })).location, 'http://b/');
});

test('redirect: path modifiers, IPv6 hosts', () => {
  const prefix = rd({ statusCode: 308, path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/new', matchedPrefix: '/old' } });
  assert.deepEqual(redirectLocation({ path: '/old/x?y=1', host: 'b', scheme: 'http', port: 80 }, prefix), { status: 308, location: 'http://b/new/x?y=1' });
  const full = rd({ statusCode: 302, path: { type: 'ReplaceFullPath', replaceFullPath: '/login' } });
  assert.equal(redirectLocation({ path: '/deep/path?next=1', host: '[fd00::1]:8080', scheme: 'http', port: 8080 }, full).location, 'http://[fd00::1]:8080/login?next=1');
  assert.equal(hostWithoutPort('[fd00::1]:8080'), '[fd00::1]');
  assert.equal(hostWithoutPort('b.demo.svc:80'), 'b.demo.svc');
  assert.equal(hostWithoutPort('b'), 'b');
  assert.throws(() => redirectLocation({ path: '/', host: 'b', scheme: 'http' }, {}), /no RequestRedirect/);
});

test('shouldMirror: percent, fraction, or every request', () => {
  const backend = { serviceKey: 'demo/shadow', port: 80 };
  const at = (r: number) => () => r;
  assert.equal(shouldMirror({ backend }), true);
  const pct: MirrorSpec = { backend, percent: 25 };
  assert.equal(shouldMirror(pct, at(0.2)), true);
  assert.equal(shouldMirror(pct, at(0.25)), false);
  assert.equal(shouldMirror({ backend, percent: 0 }, at(0)), false);
  assert.equal(shouldMirror({ backend, percent: 100 }, at(0.9999)), true);
  const frac: MirrorSpec = { backend, fraction: { numerator: 1, denominator: 1000 } };
  assert.equal(shouldMirror(frac, at(0.0009)), true);
  assert.equal(shouldMirror(frac, at(0.001)), false);
  assert.equal(shouldMirror({ backend, fraction: { numerator: 0, denominator: 1 } }, at(0)), false);
  assert.equal(shouldMirror({ backend, fraction: { numerator: 5, denominator: 5 } }, at(0.99)), true);
  // About a quarter over many samples.
  let n = 0;
  let a = 12345;
  const random = () => {
    // mulberry32
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  for (let i = 0; i < 10_000; i++) if (shouldMirror(pct, random)) n++;
  assert.ok(Math.abs(n / 10_000 - 0.25) < 0.02, String(n));
});
