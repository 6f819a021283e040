import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PodInfo } from './model';
import { spiffePrincipal, workloadNameFromPod, workloadOf } from './workload-identity';
import { testPod } from './testing';

function pod(name: string, labels: Record<string, string> = {}, serviceAccount = 'default', namespace = 'demo'): PodInfo {
  return testPod(name, { labels, serviceAccount, namespace });
}

test('workloadOf: Deployment, StatefulSet, DaemonSet, Job and bare pods', () => {
  assert.equal(workloadOf(pod('web-7d9f8b6c5-x2k4q')).name, 'web');
  assert.equal(workloadOf(pod('my-api-server-5d4f7b9c8d-8zvnq')).name, 'my-api-server');
  assert.equal(workloadOf(pod('web-7d9f8b6c5-x2k4q', { 'pod-template-hash': '7d9f8b6c5' })).name, 'web');
  assert.equal(workloadOf(pod('db-0')).name, 'db');
  assert.equal(workloadOf(pod('kafka-broker-12', { 'statefulset.kubernetes.io/pod-name': 'kafka-broker-12' })).name, 'kafka-broker');
  assert.equal(workloadOf(pod('node-agent-x2k4q', { 'controller-revision-hash': '6b8f9c7d5' })).name, 'node-agent');
  assert.equal(workloadOf(pod('migrate-9xq2z', { 'job-name': 'migrate' })).name, 'migrate');
  assert.equal(workloadOf(pod('curl')).name, 'curl');
  assert.equal(workloadOf(pod('my-cache')).name, 'my-cache', 'a bare name with a dash stays whole');
  assert.equal(workloadOf(pod('sleep-v2')).name, 'sleep-v2');
  assert.equal(workloadNameFromPod('web-7d9f8b6c5-x2k4q'), 'web');
});

test('workloadOf: app, version, canonical service and revision, principal', () => {
  const plain = workloadOf(pod('db-0', {}, 'db-sa', 'storage'));
  assert.deepEqual({ ...plain }, {
    name: 'db',
    namespace: 'storage',
    principal: 'spiffe://cluster.local/ns/storage/sa/db-sa',
    canonicalService: 'db',
    canonicalRevision: 'latest',
  });
  assert.ok(Object.isFrozen(plain));

  const appLabels = workloadOf(pod('web-7d9f8b6c5-x2k4q', { app: 'frontend', version: 'v3' }));
  assert.equal(appLabels.app, 'frontend');
  assert.equal(appLabels.version, 'v3');
  assert.equal(appLabels.canonicalService, 'frontend');
  assert.equal(appLabels.canonicalRevision, 'v3');

  const k8sLabels = workloadOf(pod('web-7d9f8b6c5-x2k4q', { 'app.kubernetes.io/name': 'shop', 'app.kubernetes.io/version': '1.2.0', app: 'frontend', version: 'v3' }));
  assert.equal(k8sLabels.canonicalService, 'shop');
  assert.equal(k8sLabels.canonicalRevision, '1.2.0');
  assert.equal(k8sLabels.app, 'frontend');

  const istioLabels = workloadOf(
    pod('web-7d9f8b6c5-x2k4q', {
      'service.istio.io/canonical-name': 'storefront',
      'service.istio.io/canonical-revision': 'blue',
      'service.istio.io/workload-name': 'web-blue',
      'app.kubernetes.io/name': 'shop',
      'app.kubernetes.io/version': '1.2.0',
    }),
  );
  assert.equal(istioLabels.canonicalService, 'storefront');
  assert.equal(istioLabels.canonicalRevision, 'blue');
  assert.equal(istioLabels.name, 'web-blue');
  assert.equal(istioLabels.app, 'shop', 'app falls back to app.kubernetes.io/name');
  assert.equal(istioLabels.version, '1.2.0');

  assert.equal(workloadOf(pod('x', {}, ''), { trustDomain: 'example.org' }).principal, 'spiffe://example.org/ns/demo/sa/default');
  // The model's owner-reference workload wins over the name's shape.
  const owned = (workload: unknown) => ({ ...pod('db-0'), workload }) as unknown as PodInfo;
  assert.equal(workloadOf(owned({ kind: 'Pod', name: 'db-0' })).name, 'db-0');
  assert.equal(workloadOf(owned({ kind: 'CronJob', name: 'nightly' })).name, 'nightly');
  assert.equal(workloadOf(owned('explicit')).name, 'explicit');
  assert.equal(workloadOf(owned(undefined)).name, 'db');
});

test('spiffePrincipal: Istio\'s spelling, the default service account, another trust domain', () => {
  assert.equal(spiffePrincipal('demo', 'web'), 'spiffe://cluster.local/ns/demo/sa/web');
  assert.equal(spiffePrincipal('demo', undefined), 'spiffe://cluster.local/ns/demo/sa/default');
  assert.equal(spiffePrincipal('demo', '', 'example.org'), 'spiffe://example.org/ns/demo/sa/default');
});
