import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseK8sYaml } from '../config/k8s-yaml';
import { convertObjects } from '../config/objects';
import { MeshSnapshot } from '../config/snapshot';
import { NodemeshError } from '../errors';
import { authzCheck, authzCheckQuery } from './authz-check';
import { ProxyConfigStore } from './proxy-config';

const WORLD = `
apiVersion: v1
kind: Namespace
metadata: { name: demo, labels: { nodemesh.dev/mode: ambient } }
---
apiVersion: v1
kind: Pod
metadata: { name: web-1, namespace: demo, labels: { app: web } }
spec: { nodeName: node1, serviceAccountName: web, containers: [{ name: app, image: x }] }
status: { podIP: 10.244.1.10 }
---
apiVersion: v1
kind: Pod
metadata: { name: outsider, namespace: demo, annotations: { nodemesh.dev/mode: "off" } }
spec: { nodeName: node1, serviceAccountName: web, containers: [{ name: app, image: x }] }
status: { podIP: 10.244.1.11 }
---
apiVersion: v1
kind: Pod
metadata: { name: api-1, namespace: demo, labels: { app: api } }
spec: { nodeName: node2, serviceAccountName: api, containers: [{ name: app, image: x, ports: [{ containerPort: 8080 }] }] }
status: { podIP: 10.244.2.10 }
---
apiVersion: v1
kind: Service
metadata: { name: api, namespace: demo }
spec: { clusterIP: 10.96.0.20, selector: { app: api }, ports: [{ port: 80, targetPort: 8080 }] }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: web-reads, namespace: demo }
spec:
  targetRefs: [{ kind: Service, group: "", name: api }]
  rules: [{ from: [{ source: { principals: [cluster.local/ns/demo/sa/web] } }], to: [{ operation: { methods: [GET] } }] }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: no-admin, namespace: demo }
spec:
  selector: { matchLabels: { app: api } }
  action: DENY
  rules: [{ to: [{ operation: { paths: [/admin*] } }] }]
`;

function config() {
  const parsed = parseK8sYaml(WORLD, 'world.yaml');
  assert.deepEqual(parsed.problems, []);
  const converted = convertObjects(parsed.objects);
  assert.deepEqual(converted.rejected, []);
  const c = new ProxyConfigStore(MeshSnapshot.from(converted, 1)).current;
  assert.deepEqual(c.rejected, []);
  return c;
}

test('authz check: the policies that apply, the verdict and the rule that decided it', () => {
  const c = config();
  const get = authzCheck(c, { from: 'demo/web-1', to: 'demo/api-1', method: 'GET', path: '/items' });
  assert.equal(get.verdict, 'allow');
  assert.deepEqual(get.decidedBy && [get.decidedBy.policy, get.decidedBy.ruleIndex, get.decidedBy.action], ['demo/web-reads', 0, 'ALLOW']);
  assert.deepEqual(get.source, { pod: 'demo/web-1', principal: 'spiffe://cluster.local/ns/demo/sa/web', ip: '10.244.1.10', mtls: true, why: 'in the mesh (namespace demo label nodemesh.dev/mode=ambient): mutual TLS proves its identity' });
  assert.deepEqual(get.destination, { pod: 'demo/api-1', ip: '10.244.2.10', port: 8080, serviceAccount: 'api', services: ['api'] });
  assert.deepEqual(get.policies.map((p) => [p.action, p.policy, p.scope]).sort(), [['ALLOW', 'demo/web-reads', 'Services api'], ['DENY', 'demo/no-admin', 'selector app=api']].sort());
  assert.equal(get.portNeedsL7, true);

  const admin = authzCheck(c, { from: 'demo/web-1', to: 'demo/api-1', method: 'GET', path: '/admin/users' });
  assert.equal(admin.verdict, 'deny');
  assert.equal(admin.decidedBy?.policy, 'demo/no-admin');
  assert.match(admin.reason, /denied by .*demo\/no-admin \(DENY\), rule 0/);

  const post = authzCheck(c, { from: 'demo/web-1', to: 'demo/api-1', method: 'POST', path: '/items' });
  assert.equal(post.verdict, 'deny', 'no ALLOW rule matches a POST');
  assert.equal(post.decidedBy, undefined);

  // Outside the mesh: plaintext, no principal; the ALLOW on the principal cannot match.
  const plain = authzCheck(c, { from: 'demo/outsider', to: 'demo/api-1', method: 'GET', path: '/items' });
  assert.equal(plain.source.mtls, false);
  assert.equal(plain.source.principal, undefined);
  assert.equal(plain.verdict, 'deny');

  // A connection (no HTTP) on a port with HTTP rules: the DENY on /admin fails closed.
  const l4 = authzCheck(c, { from: 'demo/web-1', to: 'demo/api-1' });
  assert.equal(l4.request.layer, 'L4');
  assert.equal(l4.verdict, 'deny');
  assert.equal(l4.decidedBy?.l7Unknown, true);
});

test('authz check: unknown pods, missing ports and bad query arguments say what to fix', () => {
  const c = config();
  assert.throws(() => authzCheck(c, { from: 'demo/nope', to: 'demo/api-1' }), (e: unknown) => e instanceof NodemeshError && e.code === 'ERR_NM_AUTHZ_CHECK_POD' && /--from demo\/nope: no such pod/.test(e.message));
  assert.throws(() => authzCheck(c, { from: 'demo/api-1', to: 'demo/web-1' }), /declares no container port; name one as --to demo\/web-1:PORT/);
  assert.equal(authzCheck(c, { from: 'demo/api-1', to: 'demo/web-1', port: 9000 }).destination.port, 9000);
  assert.throws(() => authzCheckQuery(new URLSearchParams('from=demo/a')), /give from=NAMESPACE\/POD and to=NAMESPACE\/POD/);
  assert.throws(() => authzCheckQuery(new URLSearchParams('from=a/b&to=c/d&port=99999')), /not a port number/);
  assert.throws(() => authzCheckQuery(new URLSearchParams('from=a/b&to=c/d&header=novalue')), /is not NAME=VALUE/);
  assert.deepEqual(authzCheckQuery(new URLSearchParams('from=a/b&to=c/d&port=80&method=GET&header=X-User=alice&header=y=1')), { from: 'a/b', to: 'c/d', port: 80, method: 'GET', headers: { 'x-user': 'alice', y: '1' } });
});
