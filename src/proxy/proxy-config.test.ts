import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseK8sYaml } from '../config/k8s-yaml';
import { convertObjects } from '../config/objects';
import { MeshSnapshot } from '../config/snapshot';
import { testPod } from '../mesh/testing';
import { evaluate } from '../policy/server/authorization/evaluate';
import type { AuthzRequest } from '../policy/server/authorization/request';
import { ProxyConfigStore } from './proxy-config';
import { decideTransport } from './outbound/decide';

test('the trust domain names every workload, and the tunnel expects the destination in it', () => {
  const client = testPod('client-1', { nodeName: 'node1', ips: ['10.244.1.10'], serviceAccount: 'client', annotations: { 'nodemesh.dev/mode': 'ambient' } });
  const server = testPod('server-1', { nodeName: 'node2', ips: ['10.244.2.10'], serviceAccount: 'server', annotations: { 'nodemesh.dev/mode': 'ambient' } });
  const snapshot = MeshSnapshot.from({ namespaces: [], pods: [client, server], services: [] }, 1);
  const byDefault = new ProxyConfigStore(snapshot).current;
  assert.equal(byDefault.workload(server).principal, 'spiffe://cluster.local/ns/demo/sa/server');
  const config = new ProxyConfigStore(snapshot, { trustDomain: 'example.org' }).current;
  assert.equal(config.workload(client).principal, 'spiffe://example.org/ns/demo/sa/client');
  const d = decideTransport(config, { nodeName: 'node1', tunnelEnabled: true, tunnelPort: 15008, sourceEnrolled: true, localPodAt: () => undefined }, client, { address: '10.244.2.10', port: 8080 });
  assert.equal(d.kind === 'tunnel' && d.expect.principal, 'spiffe://example.org/ns/demo/sa/server');
});

test('authorization reaches the proxy with the agent\'s root namespace and trust domain', () => {
  const parsed = parseK8sYaml(
    `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: only-web, namespace: istio-system }
spec: { rules: [{ from: [{ source: { serviceAccounts: [demo/web] } }] }] }
`,
    'authz.yaml',
  );
  const snapshot = MeshSnapshot.from(convertObjects(parsed.objects), 1);
  const request: AuthzRequest = {
    destination: { namespace: 'demo', labels: {}, serviceAccount: 'api', podName: 'api-1' },
    port: 8080,
    sourcePrincipal: 'spiffe://example.org/ns/demo/sa/web',
    sourceIp: '10.244.1.10',
  };
  assert.equal(evaluate(new ProxyConfigStore(snapshot).current.authorization, request).verdict, 'allow', 'istio-system is not the root namespace by default');
  const config = new ProxyConfigStore(snapshot, { meshRootNamespace: 'istio-system', trustDomain: 'example.org' }).current;
  assert.deepEqual(evaluate(config.authorization, request).decidedBy?.policy, 'istio-system/only-web');
  const otherDomain = new ProxyConfigStore(snapshot, { meshRootNamespace: 'istio-system' }).current;
  assert.equal(evaluate(otherDomain.authorization, request).verdict, 'deny', 'a service account of another trust domain');
});

test('an authorization policy whose edit is rejected stays in force as it was, with a warning; deleted, it goes', () => {
  const deny = (action: string) => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: no-admin, namespace: demo }
spec: { action: ${action}, rules: [{ to: [{ operation: { paths: [/admin] } }] }] }
`;
  const snapshotOf = (yaml: string, version: number) => MeshSnapshot.from(convertObjects(parseK8sYaml(yaml, 'authz.yaml').objects), version);
  const request: AuthzRequest = {
    destination: { namespace: 'demo', labels: {}, serviceAccount: 'api', podName: 'api-1' },
    port: 8080, sourcePrincipal: undefined, sourceIp: '10.244.1.10',
    http: { method: 'GET', path: '/admin', host: 'api', headers: {} },
  };
  const store = new ProxyConfigStore(snapshotOf(deny('DENY'), 1));
  assert.equal(evaluate(store.current.authorization, request).verdict, 'deny');
  // CUSTOM is rejected: the DENY it replaced is still enforced.
  const edited = store.update(snapshotOf(deny('CUSTOM'), 2));
  assert.equal(edited.rejected.length, 1, JSON.stringify(edited.rejected));
  assert.equal(evaluate(edited.authorization, request).verdict, 'deny', 'the previous version stays in force');
  assert.deepEqual(edited.warnings.map((w) => [w.code, w.object]), [['WARN_NM_POLICY_KEPT', 'AuthorizationPolicy demo/no-admin']]);
  // Deleted: nothing is enforced any more.
  assert.equal(evaluate(store.update(snapshotOf('', 3)).authorization, request).verdict, 'allow');
});
