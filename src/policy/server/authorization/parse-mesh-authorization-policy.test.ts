import { test } from 'node:test';
import assert from 'node:assert/strict';
import { meshPolicy, parsePolicies } from './testing';

const POD_TARGET = 'targetRefs: [{ group: "", kind: Pod, selector: { matchLabels: { app: api } } }]';

test('a GEP-3779 policy compiles to ALLOW rules of the shared model', () => {
  const { set, rejected } = parsePolicies(
    meshPolicy(
      'demo',
      'p',
      `{ ${POD_TARGET}, action: ALLOW, enforcementLevel: Network, rules: [{ sources: [{ type: ServiceAccount, serviceAccount: { name: web } }, { type: SPIFFE, spiffe: "spiffe://example.org/ns/x/sa/y" }], networkAttributes: { ports: [8080] } }] }`,
    ),
  );
  assert.deepEqual(rejected, []);
  const p = set.all[0]!;
  assert.equal(p.kind, 'XAuthorizationPolicy');
  assert.equal(p.action, 'ALLOW');
  assert.deepEqual(p.scope, { kind: 'selector', selector: { matchLabels: { app: 'api' }, matchExpressions: [] }, rootNamespaceIsMesh: false });
  assert.deepEqual(p.rules[0], {
    from: [[{ attribute: 'source.serviceAccount', values: [{ namespace: 'demo', name: 'web' }], notValues: [] }], [{ attribute: 'source.principal', values: [{ kind: 'exact', value: 'example.org/ns/x/sa/y' }], notValues: [] }]],
    to: [[{ attribute: 'destination.port', values: [8080], notValues: [] }]],
    when: [],
    l7Needed: false,
  });
});

test('Service targets (by name) are accepted, several of them', () => {
  const { set, rejected } = parsePolicies(meshPolicy('demo', 'p', '{ targetRefs: [{ group: "", kind: Service, name: a }, { kind: Service, name: b }], action: ALLOW, enforcementLevel: Network }'));
  assert.deepEqual(rejected, []);
  assert.deepEqual(set.all[0]!.scope, { kind: 'services', names: ['a', 'b'] });
  assert.deepEqual(set.all[0]!.rules, [], 'no rules: allows nothing');
});

test('what GEP-3779 does not define, or nodemesh cannot enforce, is rejected with the field', () => {
  const cases: Array<[string, string, RegExp]> = [
    [`{ ${POD_TARGET}, action: DENY, enforcementLevel: Network }`, 'spec.action', /GEP-3779 has no DENY: write an Istio AuthorizationPolicy/],
    [`{ ${POD_TARGET}, enforcementLevel: Network }`, 'spec.action', /required: ALLOW/],
    [`{ ${POD_TARGET}, action: ALLOW }`, 'spec.enforcementLevel', /required: Network/],
    [`{ ${POD_TARGET}, action: ALLOW, enforcementLevel: Application }`, 'spec.enforcementLevel', /"Application" is not supported/],
    ['{ action: ALLOW, enforcementLevel: Network }', 'spec.targetRefs', /required: at least one target/],
    ['{ targetRefs: [{ group: "", kind: Pod }], action: ALLOW, enforcementLevel: Network }', 'spec.targetRefs[0].selector', /required for kind Pod/],
    ['{ targetRefs: [{ group: "", kind: Pod, name: x, selector: {} }], action: ALLOW, enforcementLevel: Network }', 'spec.targetRefs[0].name', /must be empty for kind Pod/],
    ['{ targetRefs: [{ kind: Pod, selector: {} }, { kind: Service, name: a }], action: ALLOW, enforcementLevel: Network }', 'spec.targetRefs[0]', /must be the only targetRef/],
    ['{ targetRefs: [{ group: gateway.networking.k8s.io, kind: Gateway, name: g }], action: ALLOW, enforcementLevel: Network }', 'spec.targetRefs[0].kind', /Gateway is not supported/],
    ['{ targetRefs: [{ kind: Service, name: a, selector: {} }], action: ALLOW, enforcementLevel: Network }', 'spec.targetRefs[0].selector', /only be set with kind Pod/],
    ['{ targetRefs: [{ kind: Pod, selector: { matchExpressions: [{ key: app, operator: Like, values: [a] }] } }], action: ALLOW, enforcementLevel: Network }', 'spec.targetRefs[0].selector.matchExpressions[0].operator', /"Like" is not an operator/],
    ['{ targetRefs: [{ kind: Pod, selector: { matchExpressions: [{ key: app, operator: In }] } }], action: ALLOW, enforcementLevel: Network }', 'spec.targetRefs[0].selector.matchExpressions[0].values', /required with operator In/],
    [`{ ${POD_TARGET}, action: ALLOW, enforcementLevel: Network, rules: [{ sources: [{ type: SPIFFE, spiffe: "cluster.local/ns/a/sa/b" }] }] }`, 'spec.rules[0].sources[0].spiffe', /not a SPIFFE ID/],
    [`{ ${POD_TARGET}, action: ALLOW, enforcementLevel: Network, rules: [{ sources: [{ type: SPIFFE, serviceAccount: { name: a } }] }] }`, 'spec.rules[0].sources[0].serviceAccount', /must not be set with type SPIFFE/],
    [`{ ${POD_TARGET}, action: ALLOW, enforcementLevel: Network, rules: [{ sources: [{ type: ServiceAccount }] }] }`, 'spec.rules[0].sources[0].serviceAccount', /required with type ServiceAccount/],
    [`{ ${POD_TARGET}, action: ALLOW, enforcementLevel: Network, rules: [{ sources: [{ type: ServiceAccount, serviceAccount: { name: "web-*" } }] }] }`, 'spec.rules[0].sources[0].serviceAccount.name', /only "\*" alone/],
    [`{ ${POD_TARGET}, action: ALLOW, enforcementLevel: Network, rules: [{ sources: [{ type: Namespace }] }] }`, 'spec.rules[0].sources[0].type', /"Namespace" is not a source type/],
    [`{ ${POD_TARGET}, action: ALLOW, enforcementLevel: Network, rules: [{ networkAttributes: { ports: [0] } }] }`, 'spec.rules[0].networkAttributes.ports[0]', /not a port number/],
    [`{ ${POD_TARGET}, action: ALLOW, enforcementLevel: Network, rules: [{ networkAttributes: { paths: ["/"] } }] }`, 'spec.rules[0].networkAttributes.paths', /unknown field/],
    [`{ ${POD_TARGET}, action: ALLOW, enforcementLevel: Network, rules: [{ to: [] }] }`, 'spec.rules[0].to', /unknown field/],
  ];
  for (const [spec, path, expected] of cases) {
    const { set, rejected } = parsePolicies(meshPolicy('demo', 'p', spec));
    assert.equal(set.size, 0, `${spec} does not apply`);
    const r = rejected.find((x) => x.path === path);
    assert.ok(r, `${spec}: expected a rejection at ${path}, got ${rejected.map((x) => `${x.path}: ${x.reason}`).join('\n')}`);
    assert.match(r.reason, expected, spec);
    assert.ok(rejected.every((x) => x.object === 'XAuthorizationPolicy demo/p'));
  }
  const wrongVersion = parsePolicies(meshPolicy('demo', 'p', '{}').replace('/v1alpha1', '/v1'));
  assert.match(wrongVersion.rejected[0]!.reason, /is not served; use gateway\.networking\.x-k8s\.io\/v1alpha1/);
});
