import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseK8sYaml } from '../config/k8s-yaml';
import { convertObjects, CORE_KINDS } from '../config/objects';
import { MeshSnapshot } from '../config/snapshot';
import { MESH_RESOURCES } from '../kube/resources';
import { buildConfigSlots } from './config-slots';
import type { ObjectKind } from './object-kind';
import { coreKinds, KINDS, parseInSource } from './registry';
import { TRAFFIC_POLICY_KIND } from './traffic-policy';

const YAML = `
kind: Service
metadata: { name: b, namespace: demo }
spec: { clusterIP: 10.96.0.2, ports: [{ port: 80 }] }
---
apiVersion: nodemesh.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: good, namespace: demo }
spec: { targetRef: { group: "", kind: Service, name: b }, loadBalancer: { type: Random } }
---
apiVersion: nodemesh.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: bad, namespace: demo }
spec: { targetRef: { group: "", kind: Service, name: c }, loadBalancer: { type: Fastest } }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r, namespace: demo }
spec:
  parentRefs: [{ group: "", kind: Service, name: b }]
  rules: [{ backendRefs: [{ name: b, port: 80 }] }]
`;

function converted() {
  const parsed = parseK8sYaml(YAML, 'mesh.yaml');
  return convertObjects(parsed.objects, coreKinds());
}

test('the Kubernetes source watches the registry\'s watched kinds, in the order of old', () => {
  assert.deepEqual(
    MESH_RESOURCES.map((r) => r.id),
    ['namespaces', 'pods', 'services', 'endpointslices', 'httproutes', 'grpcroutes', 'trafficpolicies', 'peerauthentications', 'authorizationpolicies', 'xauthorizationpolicies', 'meshmembers'],
  );
  assert.deepEqual(MESH_RESOURCES.map((r) => r.optional), [false, false, false, false, true, true, true, true, true, true, true]);
  assert.deepEqual(new Set(KINDS.map((k) => k.name)).size, KINDS.length, 'one entry per kind');
});

test('the registry\'s core kinds are the ones convertObjects defaults to', () => {
  assert.deepEqual(coreKinds(), [...CORE_KINDS]);
});

test('the source parses TrafficPolicies once: values by kind name, rejections with their field', () => {
  const { parsed, rejected } = parseInSource(converted().others);
  const policies = parsed[TRAFFIC_POLICY_KIND.name] as ReadonlyMap<string, unknown>;
  assert.deepEqual([...policies.keys()], ['demo/b']);
  assert.equal(rejected.length, 1);
  assert.equal(rejected[0]!.path, 'spec.loadBalancer.type');
  assert.match(rejected[0]!.object, /^TrafficPolicy demo\/bad$/);
});

test('the proxy configuration takes a kind the source parsed from the snapshot, without parsing again', () => {
  const out = converted();
  let calls = 0;
  const counting: ObjectKind = { ...(TRAFFIC_POLICY_KIND as ObjectKind), parse: (others) => (calls++, TRAFFIC_POLICY_KIND.parse!(others)) };
  const { parsed } = parseInSource(out.others, [counting]);
  assert.equal(calls, 1);
  const snapshot = MeshSnapshot.from({ ...out, parsed }, 1);
  const slots = buildConfigSlots(snapshot);
  assert.equal(slots.policies, parsed[TRAFFIC_POLICY_KIND.name], 'the very object the source parsed');
  assert.deepEqual(slots.rejected, [], 'the source reported the rejections');
  assert.equal(slots.routes.size, 1);
});

test('without the source\'s parse (the directory source), the proxy configuration parses and reports', () => {
  const snapshot = MeshSnapshot.from(converted(), 1);
  const slots = buildConfigSlots(snapshot);
  assert.deepEqual([...slots.policies.keys()], ['demo/b']);
  assert.deepEqual(slots.rejected.map((r) => r.object), ['TrafficPolicy demo/bad']);
});

test('both authorization APIs fill the one authorization slot; their rejections are reported', () => {
  const yaml = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-post, namespace: demo }
spec: { action: DENY, rules: [{ to: [{ operation: { methods: [POST] } }] }] }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: custom, namespace: demo }
spec: { action: CUSTOM, provider: { name: x } }
---
apiVersion: gateway.networking.x-k8s.io/v1alpha1
kind: XAuthorizationPolicy
metadata: { name: web-only, namespace: demo }
spec: { targetRefs: [{ group: "", kind: Pod, selector: {} }], action: ALLOW, enforcementLevel: Network, rules: [{ sources: [{ type: ServiceAccount, serviceAccount: { name: web } }] }] }
`;
  const parsed = parseK8sYaml(yaml, 'authz.yaml');
  const slots = buildConfigSlots(MeshSnapshot.from(convertObjects(parsed.objects, coreKinds()), 1));
  assert.deepEqual(slots.authorization.all.map((p) => `${p.kind} ${p.name}`).sort(), ['AuthorizationPolicy deny-post', 'XAuthorizationPolicy web-only']);
  assert.deepEqual(slots.rejected.map((r) => `${r.object} ${r.path}`), ['AuthorizationPolicy demo/custom spec.action']);
  const { parsed: fromSource, rejected } = parseInSource(convertObjects(parsed.objects, coreKinds()).others);
  assert.equal(rejected.length, 1, 'the source reports the same rejection once');
  assert.deepEqual(Object.keys(fromSource).filter((k) => k.includes('AuthorizationPolicy')).sort(), ['AuthorizationPolicy', 'XAuthorizationPolicy']);
});
