import assert from 'node:assert/strict';
import test from 'node:test';
import type { K8sObject } from '../config/k8s-yaml';
import { convertEndpointSlice } from '../config/endpoint-slice';
import { convertObjects } from '../config/objects';
import { convertPod } from '../config/pod';
import { MeshSnapshot } from '../config/snapshot';
import { KubeSource } from './kube-source';
import { endpointSlice, namespace, pod, service } from './testing/cluster-objects';
import { FakeApiServer, kubeConfigFor } from './testing/fake-apiserver';

/** Workload identity from owner references, and endpoints from EndpointSlices. */

function owned(name: string, owner: { apiVersion: string; kind: string; name: string; controller?: boolean } | undefined, labels: Record<string, string> = {}): K8sObject {
  return pod(name, { ip: '10.1.0.1', labels, ...(owner ? { owner } : {}) }) as K8sObject;
}

test('workload from owner references', () => {
  const cases: Array<[string, K8sObject, { kind: string; name: string }]> = [
    ['Deployment via its ReplicaSet', owned('web-7d4b9c8f5-x2x9z', { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d4b9c8f5' }, { 'pod-template-hash': '7d4b9c8f5' }), { kind: 'Deployment', name: 'web' }],
    ['Deployment with dashes in its name', owned('my-web-app-5f6d-abcde', { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'my-web-app-5f6d' }, { 'pod-template-hash': '5f6d' }), { kind: 'Deployment', name: 'my-web-app' }],
    ['bare ReplicaSet (hash label does not match)', owned('rs-abcde', { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'frontend' }, { 'pod-template-hash': '12345' }), { kind: 'ReplicaSet', name: 'frontend' }],
    ['bare ReplicaSet (no hash label)', owned('rs-abcde', { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'frontend-abc' }), { kind: 'ReplicaSet', name: 'frontend-abc' }],
    ['StatefulSet', owned('db-0', { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'db' }), { kind: 'StatefulSet', name: 'db' }],
    ['DaemonSet', owned('agent-x7k2p', { apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'agent' }), { kind: 'DaemonSet', name: 'agent' }],
    ['Job', owned('migrate-abcde', { apiVersion: 'batch/v1', kind: 'Job', name: 'migrate' }), { kind: 'Job', name: 'migrate' }],
    ['Job with a short number is still a Job', owned('migrate-2-abcde', { apiVersion: 'batch/v1', kind: 'Job', name: 'migrate-2' }), { kind: 'Job', name: 'migrate-2' }],
    ['CronJob via its Job', owned('backup-28417520-q8n5k', { apiVersion: 'batch/v1', kind: 'Job', name: 'backup-28417520' }), { kind: 'CronJob', name: 'backup' }],
    ['bare pod', owned('debug', undefined), { kind: 'Pod', name: 'debug' }],
    ['owner of another kind (a mirror pod)', owned('etcd-node-a', { apiVersion: 'v1', kind: 'Node', name: 'node-a' }), { kind: 'Pod', name: 'etcd-node-a' }],
    ['same kind name from another API group', owned('x-1', { apiVersion: 'example.com/v1', kind: 'StatefulSet', name: 'x' }), { kind: 'Pod', name: 'x-1' }],
    ['a non-controller owner does not count', owned('p', { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'db', controller: false }), { kind: 'Pod', name: 'p' }],
  ];
  for (const [what, object, expected] of cases) assert.deepEqual(convertPod(object).workload, expected, what);

  // The controller reference wins over other owners.
  const two = owned('web-0', undefined);
  (two.metadata as Record<string, unknown>).ownerReferences = [
    { apiVersion: 'v1', kind: 'ConfigMap', name: 'cm', uid: 'u1' },
    { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'web', uid: 'u2', controller: true },
  ];
  assert.deepEqual(convertPod(two).workload, { kind: 'StatefulSet', name: 'web' });

  // A malformed owner reference is rejected with its field.
  const broken = owned('b', undefined);
  (broken.metadata as Record<string, unknown>).ownerReferences = [{ kind: 'ReplicaSet' }];
  const out = convertObjects([{ object: broken, file: 'f.yaml', document: 0 }]);
  assert.equal(out.rejected[0]?.path, 'metadata.ownerReferences[0].name');
});

test('EndpointSlice conversion: condition defaults, ports by name, targetRef', () => {
  const slice = convertEndpointSlice(
    endpointSlice('web-1', 'web', {
      ports: [{ name: 'http', port: 8080 }, { port: 9090 }],
      endpoints: [
        { ip: '10.1.0.1', node: 'node-a', pod: 'web-a' },
        { ip: '10.1.0.2', ready: false },
        { ip: '10.1.0.3', ready: false, serving: true, terminating: true },
      ],
    }) as K8sObject,
  );
  assert.equal(slice.serviceName, 'web');
  assert.equal(slice.addressType, 'IPv4');
  assert.deepEqual(slice.ports, [
    { name: 'http', port: 8080, protocol: 'TCP' },
    { name: '', port: 9090, protocol: 'TCP' },
  ]);
  assert.deepEqual(slice.endpoints, [
    { address: '10.1.0.1', ready: true, serving: true, terminating: false, nodeName: 'node-a', podKey: 'default/web-a' },
    { address: '10.1.0.2', ready: false, serving: false, terminating: false },
    { address: '10.1.0.3', ready: false, serving: true, terminating: true },
  ]);

  const wrongFamily = endpointSlice('v6', 'web', { addressType: 'IPv6', endpoints: [{ ip: '10.1.0.1' }] });
  const out = convertObjects([{ object: wrongFamily as K8sObject, file: 'f.yaml', document: 0 }]);
  assert.equal(out.rejected[0]?.path, 'endpoints[0].addresses[0]');
  // Other apiVersions of the kind stay in `others`.
  const beta = { ...endpointSlice('old', 'web'), apiVersion: 'discovery.k8s.io/v1beta1' };
  assert.equal(convertObjects([{ object: beta as K8sObject, file: 'f.yaml', document: 0 }]).others.length, 1);
});

function snapshotOf(objects: K8sObject[]): MeshSnapshot {
  const converted = convertObjects(objects.map((object, document) => ({ object, file: 'cluster.yaml', document })));
  assert.deepEqual(converted.rejected, []);
  return MeshSnapshot.from(converted, 1);
}

test('endpointsFor prefers EndpointSlices: ready/serving/terminating, named ports, family, dedupe', () => {
  const objects = [
    service('web', { clusterIP: '10.96.0.10', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 8080 }, { name: 'admin', port: 81, targetPort: 9901 }] }),
    // a pod the selector matches: ignored, since the Service has slices
    pod('stray', { ip: '10.1.0.99', labels: { app: 'web' } }),
    endpointSlice('web-a', 'web', {
      ports: [{ name: 'http', port: 8080 }, { name: 'admin', port: 9901 }],
      endpoints: [
        { ip: '10.1.0.2', node: 'node-b', pod: 'web-2' },
        { ip: '10.1.0.1', node: 'node-a', pod: 'web-1' },
        { ip: '10.1.0.3', ready: false, serving: true, terminating: true, pod: 'web-3' },
        { ip: '10.1.0.4', ready: false, serving: false, terminating: true },
      ],
    }),
    // the controller moving web-1 into another slice: listed twice, counted once
    endpointSlice('web-b', 'web', { ports: [{ name: 'http', port: 8080 }, { name: 'admin', port: 9901 }], endpoints: [{ ip: '10.1.0.1', ready: false }] }),
    endpointSlice('web-v6', 'web', { addressType: 'IPv6', ports: [{ name: 'http', port: 8080 }], endpoints: [{ ip: 'fd00::1' }] }),
  ] as K8sObject[];
  const snapshot = snapshotOf(objects);
  const show = (list: ReturnType<MeshSnapshot['endpointsFor']>) => list.map((e) => `${e.address}:${e.port} r=${e.ready} s=${e.serving} t=${e.terminating} ${e.podKey ?? '-'} ${e.nodeName ?? '-'}`);

  assert.deepEqual(show(snapshot.endpointsFor('default/web', 'http')), ['10.1.0.1:8080 r=true s=true t=false default/web-1 node-a', '10.1.0.2:8080 r=true s=true t=false default/web-2 node-b']);
  assert.deepEqual(show(snapshot.endpointsFor('default/web', 81)), ['10.1.0.1:9901 r=true s=true t=false default/web-1 node-a', '10.1.0.2:9901 r=true s=true t=false default/web-2 node-b']);
  assert.deepEqual(show(snapshot.endpointsFor('default/web', 'http', { includeNotReady: true })), [
    '10.1.0.1:8080 r=true s=true t=false default/web-1 node-a',
    '10.1.0.2:8080 r=true s=true t=false default/web-2 node-b',
    '10.1.0.3:8080 r=false s=true t=true default/web-3 -',
    '10.1.0.4:8080 r=false s=false t=true - -',
  ]);
  assert.deepEqual(show(snapshot.endpointsFor('default/web', 'http', { family: 6 })), ['fd00::1:8080 r=true s=true t=false - -']);
  assert.deepEqual(snapshot.endpointsFor('default/web', 'nope'), []);
});

test('endpointsFor: an unnamed Service port matches the slice port named ""; no slices falls back to the selector', () => {
  const snapshot = snapshotOf([
    service('one', { clusterIP: '10.96.0.11', ports: [{ port: 80, targetPort: 8080 }] }),
    endpointSlice('one-x', 'one', { ports: [{ port: 8080 }], endpoints: [{ ip: '10.1.0.5' }] }),
    service('sim', { clusterIP: '10.96.0.12', selector: { app: 'sim' } }),
    pod('sim-1', { ip: '10.1.0.6', labels: { app: 'sim' } }),
    // a slice of another Service changes nothing
    endpointSlice('other', 'elsewhere', { endpoints: [{ ip: '10.1.0.7' }] }),
  ] as K8sObject[]);
  assert.deepEqual(
    snapshot.endpointsFor('default/one', 80).map((e) => `${e.address}:${e.port}`),
    ['10.1.0.5:8080'],
  );
  assert.deepEqual(
    snapshot.endpointsFor('default/sim', 'http').map((e) => `${e.address}:${e.port} ${e.podKey}`),
    ['10.1.0.6:8080 default/sim-1'],
  );
});

test('the Kubernetes source carries workloads and slices through', async (t) => {
  const server = await FakeApiServer.start();
  server.create(namespace('default'));
  server.create(pod('web-7d4b9c8f5-x2x9z', { ip: '10.1.0.1', labels: { app: 'web', 'pod-template-hash': '7d4b9c8f5' }, owner: { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d4b9c8f5' } }));
  server.create(pod('backup-28417520-q8n5k', { ip: '10.1.0.2', owner: { apiVersion: 'batch/v1', kind: 'Job', name: 'backup-28417520' } }));
  server.create(service('web', { selector: { app: 'web' } }));
  server.create(endpointSlice('web-1', 'web', { endpoints: [{ ip: '10.1.0.1', pod: 'web-7d4b9c8f5-x2x9z', node: 'node-a' }, { ip: '10.1.0.9', ready: false, terminating: true }] }));
  const source = new KubeSource({ kubeConfig: kubeConfigFor(server), nodeName: 'node-a' });
  t.after(async () => {
    source.close();
    await server.close();
  });
  const result = await source.load();
  assert.deepEqual(
    result.pods.map((p) => [p.name, p.workload]),
    [
      ['backup-28417520-q8n5k', { kind: 'CronJob', name: 'backup' }],
      ['web-7d4b9c8f5-x2x9z', { kind: 'Deployment', name: 'web' }],
    ],
  );
  const snapshot = MeshSnapshot.from(result, 1);
  assert.deepEqual(
    snapshot.endpointsFor('default/web', 'http', { includeNotReady: true }).map((e) => `${e.address} ${e.ready}/${e.serving}/${e.terminating}`),
    ['10.1.0.1 true/true/false', '10.1.0.9 false/false/true'],
  );
});
