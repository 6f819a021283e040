import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseK8sYaml } from '../../config/k8s-yaml';
import { convertObjects } from '../../config/objects';
import { parsePeerAuthentications } from './parse-peer-authentication';
import { MESH_ROOT_NAMESPACE, PeerAuthentications } from './peer-authentication';

function parse(text: string) {
  const parsed = parseK8sYaml(text, 'pa.yaml');
  assert.deepEqual(parsed.problems, []);
  const converted = convertObjects(parsed.objects);
  assert.deepEqual(converted.rejected, []);
  const result = parsePeerAuthentications(converted.others);
  return { ...result, set: new PeerAuthentications(result.policies) };
}

const pa = (ns: string, name: string, spec: string, created?: string) => `---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: ${name}, namespace: ${ns}${created ? `, creationTimestamp: "${created}"` : ''} }
spec: ${spec}
`;

const api = { namespace: 'demo', labels: { app: 'api', version: 'v1' } };
const web = { namespace: 'demo', labels: { app: 'web' } };
const other = { namespace: 'other', labels: { app: 'api' } };

test('with no policy every port is PERMISSIVE (Istio\'s default)', () => {
  const { set } = parse('');
  assert.deepEqual(set.modeFor(api, 8080), { mode: 'PERMISSIVE', policy: undefined });
});

test('workload beats namespace beats mesh; UNSET defers upwards; a port of the workload policy overrides its mode', () => {
  const { set, rejected } = parse(
    pa(MESH_ROOT_NAMESPACE, 'mesh', '{ mtls: { mode: STRICT } }') +
      pa('demo', 'ns', '{ mtls: { mode: PERMISSIVE } }') +
      pa('demo', 'api', '{ selector: { matchLabels: { app: api } }, mtls: { mode: UNSET }, portLevelMtls: { "9000": { mode: DISABLE }, "9001": { mode: UNSET } } }'),
  );
  assert.deepEqual(rejected, []);
  assert.deepEqual(set.modeFor(other, 80), { mode: 'STRICT', policy: `${MESH_ROOT_NAMESPACE}/mesh` }, 'mesh-wide reaches every namespace');
  assert.deepEqual(set.modeFor(web, 80), { mode: 'PERMISSIVE', policy: 'demo/ns' }, 'the namespace policy overrides the mesh');
  assert.deepEqual(set.modeFor(api, 80), { mode: 'PERMISSIVE', policy: 'demo/ns' }, 'the workload policy is UNSET: its namespace decides');
  assert.deepEqual(set.modeFor(api, 9000), { mode: 'DISABLE', policy: 'demo/api' });
  assert.deepEqual(set.modeFor(api, 9001), { mode: 'PERMISSIVE', policy: 'demo/ns' }, 'an UNSET port defers too');
});

test('the mesh root namespace is the one the agent is given (the chart: its release namespace)', () => {
  const { set } = parse(pa('istio-system', 'mesh', '{ mtls: { mode: STRICT } }'));
  assert.equal(set.modeFor(web, 80).mode, 'PERMISSIVE', 'not the root namespace by default');
  assert.deepEqual(set.withRootNamespace('istio-system').modeFor(web, 80), { mode: 'STRICT', policy: 'istio-system/mesh' });
});

test('a selector applies only to matching pods of its own namespace, and an empty selector means the whole namespace', () => {
  const { set } = parse(pa('demo', 'v1-only', '{ selector: { matchLabels: { app: api, version: v1 } }, mtls: { mode: STRICT } }') + pa('other', 'all', '{ selector: { matchLabels: {} }, mtls: { mode: STRICT } }'));
  assert.equal(set.modeFor(api, 80).mode, 'STRICT');
  assert.equal(set.modeFor({ namespace: 'demo', labels: { app: 'api', version: 'v2' } }, 80).mode, 'PERMISSIVE');
  assert.equal(set.modeFor(web, 80).mode, 'PERMISSIVE');
  assert.deepEqual(set.modeFor({ namespace: 'other', labels: {} }, 80), { mode: 'STRICT', policy: 'other/all' });
});

test('of two namespace-wide policies the oldest applies and the other is rejected naming it; overlapping selectors pick the oldest per pod', () => {
  const { set, rejected } = parse(
    pa('demo', 'young', '{ mtls: { mode: DISABLE } }', '2025-02-01T00:00:00Z') +
      pa('demo', 'old', '{ mtls: { mode: STRICT } }', '2025-01-01T00:00:00Z') +
      pa('demo', 'sel-young', '{ selector: { matchLabels: { app: api } }, mtls: { mode: PERMISSIVE } }', '2025-02-01T00:00:00Z') +
      pa('demo', 'sel-old', '{ selector: { matchLabels: { version: v1 } }, mtls: { mode: DISABLE } }', '2025-01-01T00:00:00Z'),
  );
  assert.equal(rejected.length, 1);
  assert.equal(rejected[0]!.object, 'PeerAuthentication demo/young');
  assert.match(rejected[0]!.reason, /already has PeerAuthentication demo\/old .*created earlier \(2025-01-01T00:00:00.000Z\)/);
  assert.deepEqual(set.modeFor(web, 80), { mode: 'STRICT', policy: 'demo/old' });
  assert.deepEqual(set.modeFor(api, 80), { mode: 'DISABLE', policy: 'demo/sel-old' });
  assert.deepEqual(set.modeFor({ namespace: 'demo', labels: { app: 'api' } }, 80), { mode: 'PERMISSIVE', policy: 'demo/sel-young' });
});

test('what nodemesh cannot enforce is rejected with the field and what to write, never read as PERMISSIVE', () => {
  const cases: Array<[string, RegExp]> = [
    ['{ mtls: { mode: strict } }', /spec\.mtls\.mode: "strict" is not an mTLS mode .*write it in capitals: STRICT/],
    ['{ mtls: { mode: STRICT, cipher: x } }', /spec\.mtls\.cipher: unknown field/],
    ['{ portLevelMtls: { "8080": { mode: STRICT } } }', /spec\.portLevelMtls: applies only to a policy with spec\.selector\.matchLabels/],
    ['{ selector: { matchLabels: { app: api } }, portLevelMtls: { http: { mode: STRICT } } }', /spec\.portLevelMtls\.http: "http" is not a port number/],
    ['{ selector: { matchLabels: { app: api } }, portLevelMtls: { "70000": { mode: STRICT } } }', /"70000" is not a port number from 1 to 65535/],
    ['{ selector: { matchExpressions: [] }, mtls: { mode: STRICT } }', /spec\.selector\.matchExpressions: unknown field/],
    ['{ selector: { matchLabels: { app: "*" } }, mtls: { mode: STRICT } }', /wildcards are not allowed/],
    ['{ selector: { matchLabels: { "bad key!": x } } }', /invalid label key/],
    ['{ selector: { matchLabels: { version: 2 } } }', /a label value must be a string, got .*quote it: "2"/],
    ['{ targetRef: { kind: Service, name: b }, mtls: { mode: STRICT } }', /spec\.targetRef: unknown field/],
  ];
  for (const [spec, expected] of cases) {
    const { rejected, policies } = parse(pa('demo', 'p', spec));
    assert.equal(policies.length, 0, `${spec} does not apply`);
    assert.ok(rejected.some((r) => expected.test(r.reason)), `${spec}: ${rejected.map((r) => r.reason).join('\n')}`);
    assert.ok(rejected.every((r) => r.code === 'ERR_NM_CONFIG_INVALID' && r.object === 'PeerAuthentication demo/p'));
  }
  const unserved = parse(pa('demo', 'p', '{}').replace('security.istio.io/v1', 'security.istio.io/v2'));
  assert.match(unserved.rejected[0]!.reason, /apiVersion: "security.istio.io\/v2" is not served; use security.istio.io\/v1/);
});

test('v1beta1 is read like v1, and an empty spec is all UNSET', () => {
  const { set, rejected } = parse(pa('demo', 'beta', '{ mtls: { mode: STRICT } }').replace('/v1\n', '/v1beta1\n') + pa('other', 'empty', '{}'));
  assert.deepEqual(rejected, []);
  assert.equal(set.modeFor(web, 1).mode, 'STRICT');
  assert.deepEqual(set.modeFor(other, 1), { mode: 'PERMISSIVE', policy: undefined });
});
