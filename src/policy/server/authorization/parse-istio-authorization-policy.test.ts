import { test } from 'node:test';
import assert from 'node:assert/strict';
import { istioPolicy, parsePolicies } from './testing';

function rejectedFor(spec: string, extra = '') {
  const { set, rejected } = parsePolicies(istioPolicy('demo', 'p', spec) + extra);
  return { policies: set.all, rejected };
}

test('v1 and v1beta1 are read alike; the action defaults to ALLOW; an empty spec is ALLOW without rules', () => {
  const { set, rejected } = parsePolicies(
    istioPolicy('demo', 'v1', '{ action: DENY, rules: [{ to: [{ operation: { ports: ["80"] } }] }] }') +
      istioPolicy('demo', 'beta', '{ action: DENY, rules: [{ to: [{ operation: { ports: ["80"] } }] }] }', 'security.istio.io/v1beta1') +
      istioPolicy('demo', 'empty', '{}'),
  );
  assert.deepEqual(rejected, []);
  const [v1, beta, empty] = ['v1', 'beta', 'empty'].map((n) => set.all.find((p) => p.name === n)!);
  assert.deepEqual(beta!.rules, v1!.rules);
  assert.equal(beta!.action, 'DENY');
  assert.equal(empty!.action, 'ALLOW');
  assert.deepEqual(empty!.rules, []);
  assert.deepEqual(empty!.scope, { kind: 'all', rootNamespaceIsMesh: true });
  assert.deepEqual(v1!.rules[0], { from: undefined, to: [[{ attribute: 'destination.port', values: [80], notValues: [] }]], when: [], l7Needed: false });
});

test('a rule compiles to clauses: from/to alternatives, fields ANDed, l7Needed when an HTTP field is named', () => {
  const { policies, rejected } = rejectedFor(
    '{ rules: [{ from: [{ source: { principals: ["cluster.local/ns/demo/sa/web"], ipBlocks: ["10.0.0.0/8"] } }, { source: { namespaces: [jobs] } }], to: [{ operation: { methods: [GET], hosts: ["API.demo"] } }], when: [{ key: "request.headers[X-User]", values: [alice] }] }] }',
  );
  assert.deepEqual(rejected, []);
  const rule = policies[0]!.rules[0]!;
  assert.equal(rule.from!.length, 2);
  assert.deepEqual(rule.from![0]!.map((c) => c.attribute), ['source.principal', 'source.ip']);
  assert.deepEqual(rule.to![0]!.map((c) => c.attribute), ['request.host', 'request.method']);
  assert.deepEqual(rule.to![0]![0]!.values, [{ kind: 'exact', value: 'api.demo' }], 'hosts are lower-cased');
  assert.deepEqual(rule.when, [{ attribute: 'request.header', header: 'x-user', values: [{ kind: 'exact', value: 'alice' }], notValues: [] }]);
  assert.equal(rule.l7Needed, true);
});

test('CUSTOM is rejected: nodemesh has no external authorizer', () => {
  const { policies, rejected } = rejectedFor('{ action: CUSTOM, provider: { name: ext-authz }, rules: [{}] }');
  assert.equal(policies.length, 0);
  assert.equal(rejected.length, 1);
  assert.equal(rejected[0]!.path, 'spec.action');
  assert.match(rejected[0]!.reason, /not supported: nodemesh has no external authorizer; a CUSTOM policy would be ignored/);
});

test('when keys nodemesh cannot evaluate are rejected with the key and why', () => {
  for (const key of ['request.auth.claims[iss]', 'request.auth.principal', 'experimental.envoy.filters.network.mysql_proxy[db.table]', 'source.user', 'request.header[x]']) {
    const { policies, rejected } = rejectedFor(`{ action: DENY, rules: [{ when: [{ key: "${key}", values: ["x"] }] }] }`);
    assert.equal(policies.length, 0, key);
    assert.equal(rejected[0]!.path, 'spec.rules[0].when[0].key', key);
    assert.ok(rejected[0]!.reason.includes(`"${key}" is not supported`), rejected[0]!.reason);
    assert.match(rejected[0]!.reason, /would open a hole in a DENY rule or widen an ALLOW rule/);
  }
  const { rejected } = rejectedFor('{ rules: [{ when: [{ key: "request.auth.claims[iss]", values: ["x"] }] }] }');
  assert.match(rejected[0]!.reason, /validates no JWTs/);
});

test('what nodemesh cannot enforce is rejected with the field and what to write', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['{ action: deny }', 'spec.action', /write it in capitals: DENY/],
    ['{ action: LOG }', 'spec.action', /"LOG" is not an action/],
    ['{ provider: { name: x } }', 'spec.provider', /applies only to action CUSTOM/],
    ['{ rule: [{}] }', 'spec.rule', /unknown field \(known fields of spec: .*rules/],
    ['{ rules: [{ form: [] }] }', 'spec.rules[0].form', /unknown field/],
    ['{ rules: [{ from: [{ source: { principal: [x] } }] }] }', 'spec.rules[0].from[0].source.principal', /unknown field/],
    ['{ rules: [{ to: [{ operation: { method: [GET] } }] }] }', 'spec.rules[0].to[0].operation.method', /unknown field/],
    ['{ rules: [{ from: [{ source: { requestPrincipals: ["*"] } }] }] }', 'spec.rules[0].from[0].source.requestPrincipals', /validates no JWTs/],
    ['{ rules: [{ from: [{ source: { serviceAccounts: [web], principals: [x] } }] }] }', 'spec.rules[0].from[0].source.serviceAccounts', /cannot be set together with principals or namespaces/],
    ['{ rules: [{ from: [{ source: { serviceAccounts: ["demo/*"] } }] }] }', 'spec.rules[0].from[0].source.serviceAccounts[0]', /no wildcard/],
    ['{ rules: [{ from: [{ source: { serviceAccounts: ["a/b/c"] } }] }] }', 'spec.rules[0].from[0].source.serviceAccounts[0]', /<namespace>\/<name>/],
    ['{ rules: [{ from: [{ source: { ipBlocks: ["10.0.0.0/33"] } }] }] }', 'spec.rules[0].from[0].source.ipBlocks[0]', /prefix length "33": use 0 to 32/],
    ['{ rules: [{ from: [{ source: { notIpBlocks: ["10.0.0"] } }] }] }', 'spec.rules[0].from[0].source.notIpBlocks[0]', /not an IP address or CIDR/],
    ['{ rules: [{ from: [{ source: { namespaces: "demo" } }] }] }', 'spec.rules[0].from[0].source.namespaces', /must be a list of strings.*write \["demo"\]/],
    ['{ rules: [{ to: [{ operation: { paths: ["/a*b"] } }] }] }', 'spec.rules[0].to[0].operation.paths[0]', /neither the first nor the last character/],
    ['{ rules: [{ to: [{ operation: { paths: ["/foo/{*}"] } }] }] }', 'spec.rules[0].to[0].operation.paths[0]', /path templates/],
    ['{ rules: [{ to: [{ operation: { ports: ["80-90"] } }] }] }', 'spec.rules[0].to[0].operation.ports[0]', /not a port number/],
    ['{ rules: [{ to: [{ operation: { hosts: [""] } }] }] }', 'spec.rules[0].to[0].operation.hosts[0]', /must not be empty/],
    ['{ rules: [{ when: [{ key: source.ip }] }] }', 'spec.rules[0].when[0]', /needs values or notValues/],
    ['{ rules: [{ when: [{ key: "request.headers[]", values: [x] }] }] }', 'spec.rules[0].when[0].key', /does not name a header/],
    ['{ rules: [{ when: [{ key: destination.port, values: [http] }] }] }', 'spec.rules[0].when[0].values[0]', /not a port number/],
    ['{ selector: { matchLabels: { app: api } }, targetRefs: [{ kind: Service, name: api }] }', 'spec.targetRefs', /cannot be set together with spec.selector/],
    ['{ targetRefs: [{ group: gateway.networking.k8s.io, kind: Gateway, name: gw }] }', 'spec.targetRefs[0].kind', /gateway.networking.k8s.io\/Gateway is not supported.*target a Service/],
    ['{ targetRefs: [{ kind: Service, name: api, namespace: other }] }', 'spec.targetRefs[0].namespace', /not the policy's namespace/],
    ['{ targetRefs: [{ kind: Service }] }', 'spec.targetRefs[0].name', /required/],
    ['{ targetRef: { kind: Service, name: api } }', 'spec.targetRef', /write the target as a list/],
    ['{ selector: { matchLabels: { app: "*" } } }', 'spec.selector.matchLabels.app', /wildcards are not allowed/],
  ];
  for (const [spec, path, expected] of cases) {
    const { policies, rejected } = rejectedFor(spec);
    assert.equal(policies.length, 0, `${spec} does not apply`);
    const r = rejected.find((x) => x.path === path);
    assert.ok(r, `${spec}: expected a rejection at ${path}, got ${rejected.map((x) => `${x.path}: ${x.reason}`).join('\n')}`);
    assert.match(r.reason, expected, spec);
    assert.ok(rejected.every((x) => x.code === 'ERR_NM_CONFIG_INVALID' && x.object === 'AuthorizationPolicy demo/p'));
  }
});

test('every problem of a policy is reported, and other policies still apply', () => {
  const { policies, rejected } = rejectedFor('{ action: CUSTOM, rules: [{ when: [{ key: request.auth.principal, values: [x] }] }] }', istioPolicy('demo', 'good', '{}'));
  assert.deepEqual(rejected.map((r) => r.path).sort(), ['spec.action', 'spec.rules[0].when[0].key']);
  assert.deepEqual(policies.map((p) => p.name), ['good']);
});

test('an unserved version and the dry-run annotation are rejected', () => {
  const v2 = parsePolicies(istioPolicy('demo', 'p', '{}', 'security.istio.io/v2'));
  assert.match(v2.rejected[0]!.reason, /apiVersion: "security.istio.io\/v2" is not served; use security.istio.io\/v1/);
  const dryRun = parsePolicies(istioPolicy('demo', 'p', '{ action: DENY, rules: [{}] }').replace('namespace: demo }', 'namespace: demo, annotations: { "istio.io/dry-run": "true" } }'));
  assert.equal(dryRun.set.size, 0);
  assert.match(dryRun.rejected[0]!.reason, /istio\.io\/dry-run: not supported: nodemesh has no dry-run mode/);
});

test('remoteIpBlocks read as the peer address (nodemesh trusts no forwarding header), ANDed with ipBlocks', () => {
  const { policies, rejected } = rejectedFor('{ rules: [{ from: [{ source: { ipBlocks: ["10.0.0.0/8"], remoteIpBlocks: ["10.1.0.0/16"] } }] }] }');
  assert.deepEqual(rejected, []);
  assert.deepEqual(policies[0]!.rules[0]!.from![0]!.map((c) => [c.attribute, c.values.length]), [
    ['source.ip', 1],
    ['source.ip', 1],
  ]);
});
