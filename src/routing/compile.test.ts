import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseK8sYaml } from '../config/k8s-yaml';
import { convertObjects } from '../config/objects';
import { serviceKey } from '../mesh/model';
import { compileRoutes, type CompileResult } from './compile';
import { RouteTable, type ServiceRoutes } from './route-table';
import type { RequestFacts } from './types';

const SERVICES = `
apiVersion: v1
kind: Service
metadata: { name: b, namespace: demo }
spec:
  clusterIP: 10.96.0.10
  ports: [{ name: http, port: 80, targetPort: 8080 }, { name: grpc, port: 9090 }, { name: admin, port: 8081 }]
---
apiVersion: v1
kind: Service
metadata: { name: b-v1, namespace: demo }
spec: { clusterIP: 10.96.0.11, ports: [{ port: 80 }] }
---
apiVersion: v1
kind: Service
metadata: { name: b-v2, namespace: demo }
spec: { clusterIP: 10.96.0.12, ports: [{ name: http, port: 80 }, { name: grpc, port: 9090 }] }
---
apiVersion: v1
kind: Service
metadata: { name: shadow, namespace: demo }
spec: { clusterIP: 10.96.0.13, ports: [{ port: 80 }] }
---
apiVersion: v1
kind: Service
metadata: { name: c, namespace: other }
spec: { clusterIP: 10.96.0.14, ports: [{ port: 80 }] }
`;

function compile(yaml: string): CompileResult {
  const parsed = parseK8sYaml(`${SERVICES}\n---\n${yaml}`, 'routes.yaml');
  assert.deepEqual(parsed.problems, []);
  const converted = convertObjects(parsed.objects);
  assert.deepEqual(converted.rejected, []);
  return compileRoutes(converted.others, new Map(converted.services.map((s) => [serviceKey(s), s])));
}

/** Compiles and expects no rejection. */
function ok(yaml: string): CompileResult {
  const out = compile(yaml);
  assert.deepEqual(out.rejected, [], out.rejected.map((r) => r.reason).join('\n'));
  return out;
}

function req(path: string, options: { method?: string; headers?: RequestFacts['headers'] } = {}): RequestFacts {
  return { method: options.method ?? 'GET', path, headers: options.headers ?? {} };
}

function routesFor(out: CompileResult, port = 80, protocol: 'http' | 'grpc' = 'http', service = 'demo/b'): ServiceRoutes {
  const routes = out.table.forService(service, port, protocol);
  assert.ok(routes, `routes for ${service}:${port} ${protocol}`);
  return routes;
}

/** "HTTPRoute demo/r rules[1]" for the rule chosen, or "none". */
function chosen(routes: ServiceRoutes, request: RequestFacts): string {
  const m = routes.match(request);
  return m ? `${m.routeKey} rules[${m.ruleIndex}]` : 'none';
}

/** One HTTPRoute attached to demo/b with the given rules (YAML flow or block, indented 2). */
function route(name: string, rules: string, extra: { created?: string; namespace?: string; parent?: string } = {}): string {
  return `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: ${name}
  namespace: ${extra.namespace ?? 'demo'}
${extra.created ? `  creationTimestamp: "${extra.created}"\n` : ''}spec:
  parentRefs: [${extra.parent ?? '{ group: "", kind: Service, name: b, namespace: demo }'}]
  rules:
${rules}
---`;
}

// ---------------------------------------------------------------------------------------
// Matching

test('path Exact matches only the exact path (query ignored)', () => {
  const routes = routesFor(ok(route('r', `  - matches: [{ path: { type: Exact, value: /foo } }]\n    backendRefs: [{ name: b-v1, port: 80 }]`)));
  assert.equal(chosen(routes, req('/foo')), 'HTTPRoute demo/r rules[0]');
  assert.equal(chosen(routes, req('/foo?x=1')), 'HTTPRoute demo/r rules[0]');
  for (const p of ['/foo/', '/foo/bar', '/foobar', '/Foo', '/']) assert.equal(chosen(routes, req(p)), 'none', p);
});

test('PathPrefix matches on path-element boundaries; a trailing slash in the prefix is ignored', () => {
  const routes = routesFor(ok(route('r', `  - matches: [{ path: { type: PathPrefix, value: /foo } }]`)));
  for (const p of ['/foo', '/foo/', '/foo/bar', '/foo?x', '/foo/bar/baz?q=/x']) assert.equal(chosen(routes, req(p)), 'HTTPRoute demo/r rules[0]', p);
  for (const p of ['/foobar', '/fo', '/', '/bar/foo', '/FOO']) assert.equal(chosen(routes, req(p)), 'none', p);

  const slash = routesFor(ok(route('r', `  - matches: [{ path: { type: PathPrefix, value: /foo/ } }]`)));
  for (const p of ['/foo', '/foo/', '/foo/bar']) assert.equal(chosen(slash, req(p)), 'HTTPRoute demo/r rules[0]', p);
  assert.equal(chosen(slash, req('/foobar')), 'none');

  const root = routesFor(ok(route('r', `  - matches: [{ path: { type: PathPrefix, value: / } }]`)));
  for (const p of ['/', '/x', '/x/y?z']) assert.equal(chosen(root, req(p)), 'HTTPRoute demo/r rules[0]', p);
});

test('path RegularExpression must match the whole path', () => {
  const routes = routesFor(ok(route('r', `  - matches: [{ path: { type: RegularExpression, value: '/api/v[0-9]+/.*' } }]`)));
  assert.equal(chosen(routes, req('/api/v2/users')), 'HTTPRoute demo/r rules[0]');
  assert.equal(chosen(routes, req('/api/v2/users?x=1')), 'HTTPRoute demo/r rules[0]');
  assert.equal(chosen(routes, req('/api/vX/users')), 'none');
  assert.equal(chosen(routes, req('/prefix/api/v2/users')), 'none', 'anchored at the start');
  const alternation = routesFor(ok(route('r', `  - matches: [{ path: { type: RegularExpression, value: '/a|/b' } }]`)));
  assert.equal(chosen(alternation, req('/a')), 'HTTPRoute demo/r rules[0]');
  assert.equal(chosen(alternation, req('/ab')), 'none', 'the whole pattern is anchored, not just its branches');
});

test('headers: Exact and RegularExpression, names case-insensitive, values case-sensitive', () => {
  const routes = routesFor(
    ok(
      route(
        'r',
        `  - matches: [{ headers: [{ name: X-Version, value: v2 }] }]
  - matches: [{ headers: [{ type: RegularExpression, name: user-agent, value: '.*Mobile.*' }] }]`,
      ),
    ),
  );
  assert.equal(chosen(routes, req('/', { headers: { 'x-version': 'v2' } })), 'HTTPRoute demo/r rules[0]');
  assert.equal(chosen(routes, req('/', { headers: { 'X-VERSION': 'v2' } })), 'HTTPRoute demo/r rules[0]');
  assert.equal(chosen(routes, req('/', { headers: { 'x-version': 'V2' } })), 'none');
  assert.equal(chosen(routes, req('/', { headers: { 'x-version': 'v22' } })), 'none');
  assert.equal(chosen(routes, req('/', { headers: { 'user-agent': 'Foo Mobile Safari' } })), 'HTTPRoute demo/r rules[1]');
  assert.equal(chosen(routes, req('/', { headers: { 'user-agent': 'Desktop' } })), 'none');
  assert.equal(chosen(routes, req('/', { headers: { 'x-version': undefined } })), 'none');
  // Several values are read joined by ", ".
  assert.equal(chosen(routes, req('/', { headers: { 'x-version': ['v2'] } })), 'HTTPRoute demo/r rules[0]');
  assert.equal(chosen(routes, req('/', { headers: { 'x-version': ['v1', 'v2'] } })), 'none');
});

test('only the first header match of a name counts (spec)', () => {
  const out = ok(route('r', `  - matches: [{ headers: [{ name: x-a, value: '1' }, { name: X-A, value: '2' }] }]`));
  const routes = routesFor(out);
  assert.equal(chosen(routes, req('/', { headers: { 'x-a': '1' } })), 'HTTPRoute demo/r rules[0]');
  assert.equal(chosen(routes, req('/', { headers: { 'x-a': '2' } })), 'none');
});

test('queryParams: Exact and RegularExpression, names case-sensitive, the first value counts', () => {
  const routes = routesFor(
    ok(
      route(
        'r',
        `  - matches: [{ queryParams: [{ name: env, value: canary }] }]
  - matches: [{ queryParams: [{ type: RegularExpression, name: id, value: '[0-9]+' }] }]`,
      ),
    ),
  );
  assert.equal(chosen(routes, req('/x?env=canary')), 'HTTPRoute demo/r rules[0]');
  assert.equal(chosen(routes, req('/x?a=1&env=canary&b')), 'HTTPRoute demo/r rules[0]');
  assert.equal(chosen(routes, req('/x?ENV=canary')), 'none');
  assert.equal(chosen(routes, req('/x?env=Canary')), 'none');
  assert.equal(chosen(routes, req('/x?env=stable&env=canary')), 'none', 'first value');
  assert.equal(chosen(routes, req('/x?env=can%61ry')), 'HTTPRoute demo/r rules[0]', 'values are URL-decoded');
  assert.equal(chosen(routes, req('/x?id=123')), 'HTTPRoute demo/r rules[1]');
  assert.equal(chosen(routes, req('/x?id=12a')), 'none');
  assert.equal(chosen(routes, req('/x')), 'none');
});

test('method matches exactly', () => {
  const routes = routesFor(ok(route('r', `  - matches: [{ method: POST }]`)));
  assert.equal(chosen(routes, req('/', { method: 'POST' })), 'HTTPRoute demo/r rules[0]');
  assert.equal(chosen(routes, req('/', { method: 'GET' })), 'none');
  assert.equal(chosen(routes, req('/', { method: 'post' })), 'none');
});

test('conditions of one match AND, the matches of a rule OR; no matches means PathPrefix /', () => {
  const routes = routesFor(
    ok(
      route(
        'r',
        `  - matches:
      - { path: { type: PathPrefix, value: /a }, method: GET, headers: [{ name: x, value: '1' }], queryParams: [{ name: q, value: '1' }] }
      - { path: { type: Exact, value: /b } }
    backendRefs: [{ name: b-v1, port: 80 }]
  - backendRefs: [{ name: b-v2, port: 80 }]`,
      ),
    ),
  );
  const full = { method: 'GET', headers: { x: '1' } };
  assert.equal(chosen(routes, req('/a/z?q=1', full)), 'HTTPRoute demo/r rules[0]');
  assert.equal(routes.match(req('/a/z?q=1', full))!.matchIndex, 0);
  assert.equal(chosen(routes, req('/a/z?q=2', full)), 'HTTPRoute demo/r rules[1]', 'query differs: the catch-all rule');
  assert.equal(chosen(routes, req('/a/z?q=1', { method: 'PUT', headers: { x: '1' } })), 'HTTPRoute demo/r rules[1]');
  assert.equal(chosen(routes, req('/a/z?q=1', { method: 'GET' })), 'HTTPRoute demo/r rules[1]');
  assert.equal(chosen(routes, req('/b', { method: 'DELETE' })), 'HTTPRoute demo/r rules[0]');
  assert.equal(routes.match(req('/b'))!.matchIndex, 1);
  assert.equal(chosen(routes, req('/anything')), 'HTTPRoute demo/r rules[1]');
  assert.deepEqual(routes.match(req('/anything'))!.backends.map((b) => b.serviceKey), ['demo/b-v2']);
});

test('a route without rules matches everything and has no backend (the spec: 500)', () => {
  const out = ok(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: empty, namespace: demo }
spec:
  parentRefs: [{ group: "", kind: Service, name: b }]
---`);
  const m = routesFor(out).match(req('/x'));
  assert.ok(m);
  assert.deepEqual(m.backends, []);
});

// ---------------------------------------------------------------------------------------
// Precedence

test('precedence 1: an Exact path beats any prefix, across routes, whatever their age', () => {
  const out = ok(
    route('old', `  - matches: [{ path: { type: PathPrefix, value: /foo/bar }, method: GET, headers: [{ name: x, value: '1' }] }]`, { created: '2020-01-01T00:00:00Z' }) +
      route('new', `  - matches: [{ path: { type: Exact, value: /foo/bar } }]`, { created: '2024-01-01T00:00:00Z' }),
  );
  const routes = routesFor(out);
  assert.equal(chosen(routes, req('/foo/bar', { headers: { x: '1' } })), 'HTTPRoute demo/new rules[0]');
  assert.equal(chosen(routes, req('/foo/bar/baz', { headers: { x: '1' } })), 'HTTPRoute demo/old rules[0]');
});

test('precedence 2: the longest prefix wins, whatever the rule order', () => {
  const routes = routesFor(
    ok(
      route(
        'r',
        `  - matches: [{ path: { type: PathPrefix, value: / } }]
  - matches: [{ path: { type: PathPrefix, value: /foo } }]
  - matches: [{ path: { type: PathPrefix, value: /foo/bar } }]`,
      ),
    ),
  );
  assert.equal(chosen(routes, req('/foo/bar/x')), 'HTTPRoute demo/r rules[2]');
  assert.equal(chosen(routes, req('/foo/baz')), 'HTTPRoute demo/r rules[1]');
  assert.equal(chosen(routes, req('/foobar')), 'HTTPRoute demo/r rules[0]');
});

test('precedence: a longer prefix beats a method match; a method match beats headers; more headers beat fewer; then query params', () => {
  const routes = routesFor(
    ok(
      route(
        'r',
        `  - matches: [{ path: { type: PathPrefix, value: /api }, queryParams: [{ name: a, value: '1' }, { name: b, value: '1' }, { name: c, value: '1' }] }]
  - matches: [{ path: { type: PathPrefix, value: /api }, headers: [{ name: h1, value: '1' }] }]
  - matches: [{ path: { type: PathPrefix, value: /api }, headers: [{ name: h1, value: '1' }, { name: h2, value: '1' }] }]
  - matches: [{ path: { type: PathPrefix, value: /api }, method: GET }]
  - matches: [{ path: { type: PathPrefix, value: /api/v1 } }]
  - matches: [{ path: { type: PathPrefix, value: /api }, headers: [{ name: h1, value: '1' }], queryParams: [{ name: a, value: '1' }] }]`,
      ),
    ),
  );
  const all = { h1: '1', h2: '1' };
  assert.equal(chosen(routes, req('/api/v1/x?a=1&b=1&c=1', { headers: all })), 'HTTPRoute demo/r rules[4]', 'longest prefix first');
  assert.equal(chosen(routes, req('/api/x?a=1&b=1&c=1', { headers: all })), 'HTTPRoute demo/r rules[3]', 'method beats 2 headers');
  assert.equal(chosen(routes, req('/api/x?a=1&b=1&c=1', { method: 'POST', headers: all })), 'HTTPRoute demo/r rules[2]', '2 headers beat 1 header + query');
  assert.equal(chosen(routes, req('/api/x?a=1&b=1&c=1', { method: 'POST', headers: { h1: '1' } })), 'HTTPRoute demo/r rules[5]', 'equal headers: more query params');
  assert.equal(chosen(routes, req('/api/x?b=1', { method: 'POST', headers: { h1: '1' } })), 'HTTPRoute demo/r rules[1]');
  assert.equal(chosen(routes, req('/api/x?a=1&b=1&c=1', { method: 'POST' })), 'HTTPRoute demo/r rules[0]', '3 query params, nothing more specific matches');
});

test('precedence ties across routes: the oldest creationTimestamp, then namespace/name, then rule order', () => {
  const match = `  - matches: [{ path: { type: PathPrefix, value: /x } }]\n  - matches: [{ path: { type: PathPrefix, value: /x } }]`;
  // "zzz" is older: it wins although it sorts last by name.
  const byAge = ok(route('aaa', match, { created: '2024-05-01T10:00:00Z' }) + route('zzz', match, { created: '2024-05-01T09:59:59Z' }));
  assert.equal(chosen(routesFor(byAge), req('/x')), 'HTTPRoute demo/zzz rules[0]');
  // The same age: alphabetical by namespace/name.
  const byName = ok(route('bbb', match, { created: '2024-05-01T10:00:00Z' }) + route('aaa', match, { created: '2024-05-01T10:00:00Z' }));
  assert.equal(chosen(routesFor(byName), req('/x')), 'HTTPRoute demo/aaa rules[0]');
  // A route without a timestamp counts as newer than one with.
  const undated = ok(route('aaa', match) + route('bbb', match, { created: '2024-05-01T10:00:00Z' }));
  assert.equal(chosen(routesFor(undated), req('/x')), 'HTTPRoute demo/bbb rules[0]');
  // The namespace is part of the name (consumer namespace "a-ns" < "demo" would win; here both are producers).
  assert.equal(routesFor(byName).describe()[0], 'HTTPRoute demo/aaa rules[0] matches[0]: PathPrefix /x');
});

test('precedence ties are broken only after the specificity rules', () => {
  const out = ok(
    route('old', `  - matches: [{ path: { type: PathPrefix, value: /x } }]`, { created: '2020-01-01T00:00:00Z' }) +
      route('new', `  - matches: [{ path: { type: PathPrefix, value: /x }, headers: [{ name: h, value: '1' }] }]`, { created: '2025-01-01T00:00:00Z' }),
  );
  assert.equal(chosen(routesFor(out), req('/x', { headers: { h: '1' } })), 'HTTPRoute demo/new rules[0]');
  assert.equal(chosen(routesFor(out), req('/x')), 'HTTPRoute demo/old rules[0]');
});

test('RegularExpression paths rank after Exact and before every PathPrefix', () => {
  const routes = routesFor(
    ok(
      route(
        'r',
        `  - matches: [{ path: { type: PathPrefix, value: /api/v1/users } }]
  - matches: [{ path: { type: RegularExpression, value: '/api/.*' } }]
  - matches: [{ path: { type: Exact, value: /api/v1/users } }]`,
      ),
    ),
  );
  assert.equal(chosen(routes, req('/api/v1/users')), 'HTTPRoute demo/r rules[2]');
  assert.equal(chosen(routes, req('/api/v1/users/7')), 'HTTPRoute demo/r rules[1]');
});

// ---------------------------------------------------------------------------------------
// Attachment

test('parentRef.port attaches to one port; no port attaches to all; both merge by precedence', () => {
  const out = ok(
    route('all', `  - matches: [{ path: { type: PathPrefix, value: /a } }]`) +
      route('p80', `  - matches: [{ path: { type: PathPrefix, value: /a/b } }]`, { parent: '{ group: "", kind: Service, name: b, port: 80 }' }) +
      route('admin', `  - matches: [{ path: { type: Exact, value: /a/b } }]`, { parent: '{ group: "", kind: Service, name: b, sectionName: admin }' }),
  );
  assert.equal(chosen(routesFor(out, 80), req('/a/b')), 'HTTPRoute demo/p80 rules[0]');
  assert.equal(chosen(routesFor(out, 80), req('/a/c')), 'HTTPRoute demo/all rules[0]');
  assert.equal(chosen(routesFor(out, 9090), req('/a/b')), 'HTTPRoute demo/all rules[0]');
  assert.equal(chosen(routesFor(out, 8081), req('/a/b')), 'HTTPRoute demo/admin rules[0]', 'sectionName names the port');
  assert.equal(out.table.forService('demo/b', 80, 'grpc'), undefined, 'HTTPRoutes are not gRPC routes');
  assert.equal(out.table.forService('demo/b-v1', 80, 'http'), undefined);
  assert.equal(out.table.size, 3);
  assert.deepEqual(
    out.table.describe().map((r) => `${r.protocol} ${r.service}:${r.port} ${r.entries.length}`),
    ['http demo/b:* 1', 'http demo/b:80 2', 'http demo/b:8081 2'],
  );
});

test('parentRefs to Gateways are ignored; kind Service without group "" is a warning, not an attachment', () => {
  const out = ok(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: edge, namespace: demo }
spec:
  parentRefs: [{ name: my-gateway }]
  rules: [{ filters: [{ type: ExtensionRef, extensionRef: { group: x, kind: y, name: z } }] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: nogroup, namespace: demo }
spec:
  parentRefs: [{ kind: Service, name: b }]
---`);
  assert.equal(out.table.size, 0);
  assert.equal(out.warnings.length, 1);
  assert.equal(out.warnings[0]!.object, 'HTTPRoute demo/nogroup');
  assert.equal(out.warnings[0]!.path, 'spec.parentRefs[0].group');
  assert.match(out.warnings[0]!.reason, /write group: ""/);
});

test('GAMMA consumer routes replace the producer routes for clients of their namespace only', () => {
  const out = ok(
    route('producer', `  - backendRefs: [{ name: b-v1, port: 80 }]`) +
      route('consumer', `  - backendRefs: [{ name: c, port: 80 }]`, { namespace: 'other', parent: '{ group: "", kind: Service, name: b, namespace: demo }' }),
  );
  assert.equal(chosen(out.table.forService('demo/b', 80, 'http')!, req('/')), 'HTTPRoute demo/producer rules[0]');
  assert.equal(chosen(out.table.forService('demo/b', 80, 'http', 'demo')!, req('/')), 'HTTPRoute demo/producer rules[0]');
  assert.equal(chosen(out.table.forService('demo/b', 80, 'http', 'third')!, req('/')), 'HTTPRoute demo/producer rules[0]');
  const consumer = out.table.forService('demo/b', 80, 'http', 'other')!.match(req('/'))!;
  assert.equal(consumer.routeKey, 'HTTPRoute other/consumer');
  assert.deepEqual(consumer.backends, [{ serviceKey: 'other/c', port: 80, weight: 1 }], 'the backend namespace defaults to the route\'s');
});

test('RouteTable.empty has no routes', () => {
  const table = RouteTable.empty();
  assert.equal(table.size, 0);
  assert.equal(table.forService('demo/b', 80, 'http'), undefined);
});

// ---------------------------------------------------------------------------------------
// What a match carries

test('a match carries backends, filters, mirrors, rewrite, timeouts and retry', () => {
  const out = ok(
    route(
      'b-canary',
      `  - name: canary
    matches: [{ path: { type: PathPrefix, value: /api } }]
    filters:
      - { type: RequestHeaderModifier, requestHeaderModifier: { set: [{ name: X-Env, value: prod }], add: [{ name: x-trace, value: '1' }], remove: [X-Debug] } }
      - { type: ResponseHeaderModifier, responseHeaderModifier: { add: [{ name: x-served-by, value: nodemesh }] } }
      - { type: RequestMirror, requestMirror: { backendRef: { name: shadow, port: 80 }, percent: 10 } }
      - { type: RequestMirror, requestMirror: { backendRef: { name: shadow, port: 80 }, fraction: { numerator: 1 } } }
      - { type: URLRewrite, urlRewrite: { hostname: b-internal, path: { type: ReplacePrefixMatch, replacePrefixMatch: / } } }
    backendRefs:
      - { name: b-v1, port: 80, weight: 90 }
      - name: b-v2
        port: 80
        weight: 10
        filters: [{ type: RequestHeaderModifier, requestHeaderModifier: { set: [{ name: x-canary, value: 'true' }] } }]
      - { name: b-v1, port: 80 }
    timeouts: { request: 10s, backendRequest: 2s }
    retry: { codes: [502, 503], attempts: 3, backoff: 100ms }`,
    ),
  );
  assert.deepEqual(out.warnings, []);
  const m = routesFor(out).match(req('/api/v1/x'))!;
  assert.equal(m.routeKey, 'HTTPRoute demo/b-canary');
  assert.equal(m.ruleName, 'canary');
  assert.deepEqual(
    m.backends.map((b) => [b.serviceKey, b.port, b.weight, b.requestHeaderModifier?.set[0]?.name]),
    [
      ['demo/b-v1', 80, 90, undefined],
      ['demo/b-v2', 80, 10, 'x-canary'],
      ['demo/b-v1', 80, 1, undefined],
    ],
  );
  assert.deepEqual(m.requestHeaderModifier, { set: [{ name: 'x-env', value: 'prod' }], add: [{ name: 'x-trace', value: '1' }], remove: ['x-debug'] });
  assert.deepEqual(m.responseHeaderModifier, { set: [], add: [{ name: 'x-served-by', value: 'nodemesh' }], remove: [] });
  assert.deepEqual(m.mirrors, [
    { backend: { serviceKey: 'demo/shadow', port: 80 }, percent: 10 },
    { backend: { serviceKey: 'demo/shadow', port: 80 }, fraction: { numerator: 1, denominator: 100 } },
  ]);
  assert.deepEqual(m.urlRewrite, { hostname: 'b-internal', path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/', matchedPrefix: '/api' } });
  assert.deepEqual(m.timeouts, { requestMs: 10_000, backendRequestMs: 2_000 });
  assert.deepEqual(m.retry, { attempts: 3, backoffMs: 100, codes: [502, 503] });
  assert.equal(m.redirect, undefined);
  assert.ok(Object.isFrozen(m) && Object.isFrozen(m.backends), 'shared by every request: frozen');
  assert.equal(routesFor(out).match(req('/api/y')), m, 'no allocation per request');
});

test('timeouts "0s" disable, absent stay unset; retry defaults', () => {
  const out = ok(
    route(
      'r',
      `  - matches: [{ path: { type: Exact, value: /a } }]
    timeouts: { request: 0s, backendRequest: 1h }
    retry: {}
  - matches: [{ path: { type: Exact, value: /b } }]`,
    ),
  );
  const a = routesFor(out).match(req('/a'))!;
  assert.deepEqual(a.timeouts, { requestMs: 0, backendRequestMs: 3_600_000 }, 'backendRequest may exceed a disabled request timeout');
  assert.deepEqual(a.retry, { attempts: 2, backoffMs: 25, codes: [] });
  const b = routesFor(out).match(req('/b'))!;
  assert.deepEqual(b.timeouts, {});
  assert.equal(b.retry, undefined);
});

test('a redirect rule carries the redirect with the matched prefix', () => {
  const out = ok(
    route(
      'r',
      `  - matches: [{ path: { type: PathPrefix, value: /old } }]
    filters: [{ type: RequestRedirect, requestRedirect: { scheme: https, statusCode: 301, path: { type: ReplacePrefixMatch, replacePrefixMatch: /new } } }]`,
    ),
  );
  assert.deepEqual(routesFor(out).match(req('/old/x'))!.redirect, {
    statusCode: 301,
    scheme: 'https',
    path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/new', matchedPrefix: '/old' },
  });
  const dflt = ok(route('r', `  - filters: [{ type: RequestRedirect, requestRedirect: { hostname: elsewhere } }]`));
  assert.deepEqual(routesFor(dflt).match(req('/'))!.redirect, { statusCode: 302, hostname: 'elsewhere' });
});

// ---------------------------------------------------------------------------------------
// Unresolved references: warnings, not rejections

test('a backend Service that does not exist is kept, marked unresolved, with a warning', () => {
  const out = ok(route('r', `  - backendRefs: [{ name: b-v1, port: 80, weight: 50 }, { name: missing, port: 80, weight: 50 }, { name: b-v1, port: 81 }]`));
  const m = routesFor(out).match(req('/'))!;
  assert.equal(m.backends.length, 3);
  assert.equal(m.backends[0]!.unresolved, undefined);
  assert.match(m.backends[1]!.unresolved!, /Service demo\/missing does not exist/);
  assert.match(m.backends[2]!.unresolved!, /has no port 81/);
  assert.deepEqual(
    out.warnings.map((w) => [w.object, w.path, w.code]),
    [
      ['HTTPRoute demo/r', 'spec.rules[0].backendRefs[1]', 'WARN_NM_ROUTE_REF'],
      ['HTTPRoute demo/r', 'spec.rules[0].backendRefs[2]', 'WARN_NM_ROUTE_REF'],
    ],
  );
  assert.match(out.warnings[0]!.reason, /^routes\.yaml: HTTPRoute demo\/r: spec\.rules\[0\]\.backendRefs\[1\]: .*500/);
});

test('a backend in another namespace needs no ReferenceGrant (GEP-1294: mesh routes may send to any namespace)', () => {
  const out = ok(route('r', `  - backendRefs: [{ name: c, namespace: other, port: 80 }]`));
  assert.deepEqual(routesFor(out).match(req('/'))!.backends, [{ serviceKey: 'other/c', port: 80, weight: 1 }]);
  assert.deepEqual(out.warnings, []);
  // A consumer route (in the caller's namespace) sending to the producer's Service.
  const consumer = ok(route('r', `  - backendRefs: [{ name: b-v1, namespace: demo, port: 80 }]`, { namespace: 'other' }));
  assert.deepEqual(consumer.table.forService('demo/b', 80, 'http', 'other')!.match(req('/'))!.backends, [{ serviceKey: 'demo/b-v1', port: 80, weight: 1 }]);
  assert.deepEqual(consumer.warnings, []);
});

test('a backend that is not a core Service: the route applies, that backend answers 500 (ResolvedRefs InvalidKind)', () => {
  const out = ok(route('r', `  - backendRefs: [{ group: example.com, kind: Bucket, name: x, port: 80 }]`));
  assert.match(routesFor(out).match(req('/'))!.backends[0]!.unresolved!, /example\.com\/Bucket demo\/x is not a core Service/);
  assert.deepEqual(out.warnings.map((w) => w.path), ['spec.rules[0].backendRefs[0]']);
  const conditions = out.statuses[0]!.parents[0]!.conditions;
  assert.deepEqual(conditions.map((c) => [c.type, c.status, c.reason]), [['Accepted', 'True', 'Accepted'], ['ResolvedRefs', 'False', 'InvalidKind']]);
});

// ---------------------------------------------------------------------------------------
// Route status

test('status: one entry per Service parentRef, as written, with Accepted and ResolvedRefs', () => {
  const out = ok(route('r', `  - backendRefs: [{ name: b-v1, port: 80 }]`, { parent: '{ group: "", kind: Service, name: b, port: 80 }, { group: "", kind: Service, name: b-v2, sectionName: grpc }, { name: gw }' }));
  assert.equal(out.statuses.length, 1);
  const s = out.statuses[0]!;
  assert.deepEqual([s.kind, s.namespace, s.name, s.file], ['HTTPRoute', 'demo', 'r', 'routes.yaml']);
  assert.deepEqual(s.parents.map((p) => p.parentRef), [
    { group: '', kind: 'Service', name: 'b', port: 80 },
    { group: '', kind: 'Service', name: 'b-v2', sectionName: 'grpc' },
  ], 'the Gateway parent is not ours to report');
  for (const p of s.parents) {
    assert.equal(p.controllerName, 'nodemesh.dev/mesh');
    assert.deepEqual(p.conditions.map((c) => [c.type, c.status, c.reason]), [['Accepted', 'True', 'Accepted'], ['ResolvedRefs', 'True', 'ResolvedRefs']]);
  }
});

test('status: a parent Service, port or sectionName that does not exist is Accepted=False NoMatchingParent', () => {
  const rules = `  - backendRefs: [{ name: b-v1, port: 80 }]`;
  for (const [parent, message] of [
    ['{ group: "", kind: Service, name: nope }', /Service demo\/nope does not exist/],
    ['{ group: "", kind: Service, name: b, port: 81 }', /Service demo\/b has no port 81.*ports: 80, 9090, 8081/],
    ['{ group: "", kind: Service, name: b, sectionName: web }', /no port named "web"/],
  ] as const) {
    const accepted = ok(route('r', rules, { parent })).statuses[0]!.parents[0]!.conditions[0]!;
    assert.deepEqual([accepted.status, accepted.reason], ['False', 'NoMatchingParent'], parent);
    assert.match(accepted.message, message);
  }
});

test('status: a missing backend Service or port is ResolvedRefs=False BackendNotFound; fixing it clears the condition', () => {
  const missing = ok(route('r', `  - backendRefs: [{ name: gone, port: 80 }, { name: b-v1, port: 81 }]`));
  const [accepted, resolved] = missing.statuses[0]!.parents[0]!.conditions;
  assert.deepEqual([accepted!.status, resolved!.status, resolved!.reason], ['True', 'False', 'BackendNotFound']);
  assert.match(resolved!.message, /Service demo\/gone does not exist.*; Service demo\/b-v1 has no port 81/);
  const fixed = ok(route('r', `  - backendRefs: [{ name: b-v1, port: 80 }]`));
  assert.deepEqual(fixed.statuses[0]!.parents[0]!.conditions[1]!.status, 'True');
});

test('status: a rejected route is Accepted=False UnsupportedValue on each of its Service parents, with the field', () => {
  const out = compile(route('r', `  - filters: [{ type: ExtensionRef, extensionRef: { group: g, kind: k, name: n } }]`, { parent: '{ group: "", kind: Service, name: b }, { group: "", kind: Service, name: c, namespace: other }' }));
  assert.equal(out.rejected.length, 1);
  const s = out.statuses[0]!;
  assert.deepEqual(s.parents.map((p) => p.parentRef.name), ['b', 'c']);
  for (const p of s.parents) {
    assert.deepEqual(p.conditions.map((c) => [c.type, c.status, c.reason]), [['Accepted', 'False', 'UnsupportedValue'], ['ResolvedRefs', 'Unknown', 'ResolvedRefs']]);
    assert.match(p.conditions[0]!.message, /^spec\.rules\[0\]\.filters\[0\]\.type: .*ExtensionRef/);
  }
  // A route with no Service parent has no status from nodemesh.
  assert.deepEqual(ok(route('r', '', { parent: '{ name: gw }' })).statuses, []);
});

// ---------------------------------------------------------------------------------------
// Rejections

function rejected(rules: string): { path: string | undefined; reason: string } {
  const out = compile(route('bad', rules) + route('good', `  - backendRefs: [{ name: b-v1, port: 80 }]`));
  assert.equal(out.rejected.length, 1, `exactly the bad route is rejected: ${JSON.stringify(out.rejected)}`);
  const r = out.rejected[0]!;
  assert.equal(r.object, 'HTTPRoute demo/bad');
  assert.equal(r.file, 'routes.yaml');
  assert.equal(r.code, 'ERR_NM_CONFIG_INVALID');
  assert.ok(r.reason.startsWith(`routes.yaml: HTTPRoute demo/bad: ${r.path}: `), r.reason);
  // The other route still compiles, and the bad one is not in the table.
  assert.equal(out.table.size, 1);
  assert.equal(chosen(routesFor(out), req('/')), 'HTTPRoute demo/good rules[0]');
  return { path: r.path, reason: r.reason };
}

test('rejected: URLRewrite and RequestRedirect in one rule', () => {
  const r = rejected(`  - backendRefs: [{ name: b-v1, port: 80 }]
  - filters:
      - { type: URLRewrite, urlRewrite: { hostname: x } }
      - { type: RequestRedirect, requestRedirect: { hostname: y } }`);
  assert.equal(r.path, 'spec.rules[1].filters[1].type');
  assert.match(r.reason, /URLRewrite or a RequestRedirect filter, not both \(filters\[0\] is URLRewrite\); remove one/);
});

test('rejected: a redirect status code that is not a redirect', () => {
  const r = rejected(`  - filters: [{ type: RequestRedirect, requestRedirect: { statusCode: 200 } }]`);
  assert.equal(r.path, 'spec.rules[0].filters[0].requestRedirect.statusCode');
  assert.match(r.reason, /number 200 is not a redirect status code \(use 301, 302, 303, 307, 308; default 302\)/);
});

test('rejected: an unknown filter type, and a known one nodemesh does not support', () => {
  const r = rejected(`  - backendRefs: [{ name: b-v1, port: 80 }]
  - filters: [{ type: RequestHeaderModifier, requestHeaderModifier: { set: [{ name: a, value: b }] } }, { type: Teleport }]`);
  assert.equal(r.path, 'spec.rules[1].filters[1].type');
  assert.match(r.reason, /"Teleport" is not a filter type nodemesh supports on an HTTPRoute \(use RequestHeaderModifier, ResponseHeaderModifier, RequestMirror, URLRewrite, RequestRedirect\)/);
  const ext = rejected(`  - filters: [{ type: ExtensionRef, extensionRef: { group: g, kind: k, name: n } }]`);
  assert.equal(ext.path, 'spec.rules[0].filters[0].type');
  assert.match(ext.reason, /does not support ExtensionRef filters/);
});

test('rejected: a negative weight, a weight too large, a Service backend without port', () => {
  const r = rejected(`  - backendRefs: [{ name: b-v1, port: 80 }, { name: b-v2, port: 80, weight: -1 }]`);
  assert.equal(r.path, 'spec.rules[0].backendRefs[1].weight');
  assert.match(r.reason, /must be an integer from 0 to 1000000 .*got number -1/);
  assert.equal(rejected(`  - backendRefs: [{ name: b-v1, port: 80, weight: 1000001 }]`).path, 'spec.rules[0].backendRefs[0].weight');
  const port = rejected(`  - backendRefs: [{ name: b-v1 }]`);
  assert.equal(port.path, 'spec.rules[0].backendRefs[0].port');
  assert.match(port.reason, /required for a Service backend/);
});

test('rejected: a regular expression that does not compile (path, header, query)', () => {
  const p = rejected(`  - matches: [{ path: { type: RegularExpression, value: '/api/(v1' } }]`);
  assert.equal(p.path, 'spec.rules[0].matches[0].path.value');
  assert.match(p.reason, /"\/api\/\(v1" is not a valid regular expression .*whole path/);
  const h = rejected(`  - matches: [{ headers: [{ type: RegularExpression, name: x, value: '(?i)abc' }] }]`);
  assert.equal(h.path, 'spec.rules[0].matches[0].headers[0].value');
  assert.match(h.reason, /inline flags such as \(\?i\) are not supported/);
  const q = rejected(`  - matches: [{ queryParams: [{ type: RegularExpression, name: x, value: '[a-' }] }]`);
  assert.equal(q.path, 'spec.rules[0].matches[0].queryParams[0].value');
});

test('rejected: durations that do not parse, and backendRequest longer than request', () => {
  const d = rejected(`  - timeouts: { request: 1d }`);
  assert.equal(d.path, 'spec.rules[0].timeouts.request');
  assert.match(d.reason, /"1d" is not a Gateway API duration; write one to four groups/);
  assert.equal(rejected(`  - timeouts: { backendRequest: '5' }`).path, 'spec.rules[0].timeouts.backendRequest');
  assert.equal(rejected(`  - retry: { backoff: 1.5s }`).path, 'spec.rules[0].retry.backoff');
  const longer = rejected(`  - timeouts: { request: 5s, backendRequest: 10s }`);
  assert.equal(longer.path, 'spec.rules[0].timeouts.backendRequest');
  assert.match(longer.reason, /10s is longer than the request timeout 5s; make it at most the request timeout/);
  assert.match(rejected(`  - timeouts: { request: 5s, backendRequest: 0s }`).reason, /0s \(no timeout\) is longer than the request timeout 5s/);
});

test('rejected: the checks the API server would have made', () => {
  const cases: Array<[string, string, RegExp]> = [
    [`  - matches: [{ path: { type: Exact, value: foo } }]`, 'spec.rules[0].matches[0].path.value', /must be an absolute path/],
    [`  - matches: [{ path: { type: PathPrefix, value: /a//b } }]`, 'spec.rules[0].matches[0].path.value', /must not contain "\/\/"/],
    [`  - matches: [{ path: { type: Prefix, value: /a } }]`, 'spec.rules[0].matches[0].path.type', /"Prefix" is not a path match type \(use Exact, PathPrefix, RegularExpression\)/],
    [`  - matches: [{ method: FETCH }]`, 'spec.rules[0].matches[0].method', /"FETCH" is not an HTTP method/],
    [`  - matches: [{ headers: [{ name: 'bad name', value: x }] }]`, 'spec.rules[0].matches[0].headers[0].name', /not a valid HTTP header name/],
    [`  - filters: [{ type: RequestHeaderModifier }]`, 'spec.rules[0].filters[0].requestHeaderModifier', /required for this filter type/],
    [`  - filters: [{ type: RequestHeaderModifier, responseHeaderModifier: {} }]`, 'spec.rules[0].filters[0].responseHeaderModifier', /must not be set when type is RequestHeaderModifier/],
    [
      `  - filters: [{ type: RequestHeaderModifier, requestHeaderModifier: { set: [{ name: a, value: '1' }, { name: A, value: '2' }] } }]`,
      'spec.rules[0].filters[0].requestHeaderModifier.set[1].name',
      /listed twice in set/,
    ],
    [
      `  - filters: [{ type: ResponseHeaderModifier, responseHeaderModifier: {} }, { type: ResponseHeaderModifier, responseHeaderModifier: {} }]`,
      'spec.rules[0].filters[1].type',
      /already filters\[0\]; a filter of this type may appear once/,
    ],
    [
      `  - matches: [{ path: { type: Exact, value: /a } }]\n    filters: [{ type: URLRewrite, urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /b } } }]`,
      'spec.rules[0].filters[0].urlRewrite.path.type',
      /ReplacePrefixMatch needs a rule with exactly one match, of path type PathPrefix/,
    ],
    [
      `  - matches: [{ path: { type: PathPrefix, value: /a } }, { path: { type: PathPrefix, value: /b } }]\n    filters: [{ type: RequestRedirect, requestRedirect: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /c } } }]`,
      'spec.rules[0].filters[0].requestRedirect.path.type',
      /exactly one match/,
    ],
    [`  - filters: [{ type: URLRewrite, urlRewrite: { path: { type: ReplaceFullPath } } }]`, 'spec.rules[0].filters[0].urlRewrite.path.replaceFullPath', /required when type is ReplaceFullPath/],
    [`  - filters: [{ type: URLRewrite, urlRewrite: { path: { type: ReplaceFullPath, replaceFullPath: "/a b" } } }]`, 'spec.rules[0].filters[0].urlRewrite.path.replaceFullPath', /visible ASCII characters \(no spaces/],
    [`  - filters: [{ type: RequestHeaderModifier, requestHeaderModifier: { set: [{ name: x-a, value: "a\\r\\nx-b: c" }] } }]`, 'spec.rules[0].filters[0].requestHeaderModifier.set[0].value', /must not contain CR, LF or NUL/],
    [`  - filters: [{ type: URLRewrite, urlRewrite: { hostname: 'Bad_Host' } }]`, 'spec.rules[0].filters[0].urlRewrite.hostname', /not a valid hostname/],
    [`  - filters: [{ type: RequestRedirect, requestRedirect: { scheme: ftp } }]`, 'spec.rules[0].filters[0].requestRedirect.scheme', /"ftp" is not a redirect scheme \(use http, https\)/],
    [`  - filters: [{ type: RequestMirror, requestMirror: { backendRef: { name: shadow, port: 80 }, percent: 101 } }]`, 'spec.rules[0].filters[0].requestMirror.percent', /integer from 0 to 100/],
    [
      `  - filters: [{ type: RequestMirror, requestMirror: { backendRef: { name: shadow, port: 80 }, percent: 5, fraction: { numerator: 1 } } }]`,
      'spec.rules[0].filters[0].requestMirror.fraction',
      /set percent or fraction, not both/,
    ],
    [
      `  - filters: [{ type: RequestMirror, requestMirror: { backendRef: { name: shadow, port: 80 }, fraction: { numerator: 3, denominator: 2 } } }]`,
      'spec.rules[0].filters[0].requestMirror.fraction.numerator',
      /more than the denominator 2/,
    ],
    [
      `  - backendRefs: [{ name: b-v1, port: 80, filters: [{ type: URLRewrite, urlRewrite: { hostname: x } }] }]`,
      'spec.rules[0].backendRefs[0].filters[0].type',
      /does not support URLRewrite filters on backendRefs/,
    ],
    [`  - retry: { codes: [200] }`, 'spec.rules[0].retry.codes[0]', /an HTTP status code to retry \(an integer from 400 to 599\)/],
    [`  - retry: { attempts: -1 }`, 'spec.rules[0].retry.attempts', /integer from 0/],
  ];
  for (const [rules, path, reason] of cases) {
    const r = rejected(rules);
    assert.equal(r.path, path, rules);
    assert.match(r.reason, reason, rules);
  }
});

test('a malformed parentRef to a Service rejects the route', () => {
  const out = compile(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r, namespace: demo }
spec:
  parentRefs: [{ group: "", kind: Service, port: 70000, name: b }]
---`);
  assert.equal(out.rejected.length, 1);
  assert.equal(out.rejected[0]!.path, 'spec.parentRefs[0].port');
});

test('parentRef warnings: a Service or a port that does not exist', () => {
  const out = ok(
    route('r1', `  - backendRefs: [{ name: b-v1, port: 80 }]`, { parent: '{ group: "", kind: Service, name: nope }' }) +
      route('r2', `  - backendRefs: [{ name: b-v1, port: 80 }]`, { parent: '{ group: "", kind: Service, name: b, port: 81 }' }) +
      route('r3', `  - backendRefs: [{ name: b-v1, port: 80 }]`, { parent: '{ group: "", kind: Service, name: b, sectionName: nope }' }),
  );
  assert.deepEqual(
    out.warnings.map((w) => [w.object, w.path]),
    [
      ['HTTPRoute demo/r1', 'spec.parentRefs[0].name'],
      ['HTTPRoute demo/r2', 'spec.parentRefs[0].port'],
      ['HTTPRoute demo/r3', 'spec.parentRefs[0].sectionName'],
    ],
  );
  assert.match(out.warnings[2]!.reason, /no port named "nope".*\(http, grpc, admin\)/);
  assert.ok(out.table.forService('demo/nope', 80, 'http'), 'attached anyway: it applies once the Service exists');
  assert.ok(out.table.forService('demo/b', 81, 'http'));
  assert.equal(out.table.size, 2, 'r3 attaches nowhere');
});
