import { test } from 'node:test';
import assert from 'node:assert/strict';
import { testPod } from '../mesh/testing';
import { memberObjectOf, podOfMember, MEMBER_NODE_LABEL } from './mesh-member';
import { FieldError } from './validation';

test('a member carries what another node needs (node, IPs, service account, labels, workload) and reads back as an ambient pod', () => {
  const pod = testPod('web-1', { nodeName: 'node2', ips: ['10.244.2.5', 'fd00::5'], serviceAccount: 'web', labels: { app: 'web' }, workload: { kind: 'Deployment', name: 'web' }, containerPorts: [{ port: 8080, protocol: 'TCP' }] });
  const object = memberObjectOf(pod);
  const meta = object.metadata as { labels: Record<string, string>; ownerReferences: unknown[] };
  assert.equal(meta.labels[MEMBER_NODE_LABEL], 'node2');
  assert.deepEqual(meta.ownerReferences, [{ apiVersion: 'v1', kind: 'Pod', name: 'web-1', uid: 'uid-web-1' }], 'removed with its pod by the garbage collector');
  const back = podOfMember(JSON.parse(JSON.stringify(object)));
  assert.deepEqual(
    { name: back.name, namespace: back.namespace, uid: back.uid, nodeName: back.nodeName, ips: back.ips, serviceAccount: back.serviceAccount, labels: back.labels, workload: back.workload, mode: back.annotations['nodemesh.dev/mode'], ports: back.containerPorts },
    { name: 'web-1', namespace: 'demo', uid: 'uid-web-1', nodeName: 'node2', ips: ['10.244.2.5', 'fd00::5'], serviceAccount: 'web', labels: { app: 'web' }, workload: { kind: 'Deployment', name: 'web' }, mode: 'ambient', ports: [] },
  );
});

test('a malformed member is refused with the field', () => {
  const good = memberObjectOf(testPod('a', { nodeName: 'node2', ips: ['10.0.0.1'] }));
  const bad = (spec: Record<string, unknown>) => () => podOfMember({ ...good, spec: { ...(good.spec as object), ...spec } });
  assert.throws(bad({ ips: ['nope'] }), (e: FieldError) => e.path === 'spec.ips[0]');
  assert.throws(bad({ ips: [] }), (e: FieldError) => e.path === 'spec.ips');
  assert.throws(bad({ nodeName: 'Not A Node' }), (e: FieldError) => e.path === 'spec.nodeName');
  assert.throws(bad({ workload: { kind: 'Rollout', name: 'x' } }), (e: FieldError) => e.path === 'spec.workload.kind');
});
