import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NamespaceInfo, PodInfo, ServiceInfo } from '../mesh/model';
import { resolveEndpoints } from './endpoints';
import { MeshSnapshot } from './snapshot';

function pod(name: string, extra: Partial<PodInfo> = {}): PodInfo {
  return {
    name,
    namespace: 'demo',
    uid: `uid-${name}`,
    labels: { app: 'a' },
    annotations: {},
    nodeName: 'node1',
    ips: ['10.244.1.10'],
    hostNetwork: false,
    serviceAccount: 'default',
    containerPorts: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    ready: true,
    ...extra,
  };
}

const svcA: ServiceInfo = {
  name: 'a',
  namespace: 'demo',
  clusterIPs: ['10.96.0.10', 'fd00:96::10'],
  ports: [
    { name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' },
    { name: 'raw', port: 81, targetPort: 9000, protocol: 'TCP' },
  ],
  selector: { app: 'a' },
};

function snapshot(pods: PodInfo[], namespaces: NamespaceInfo[] = [], services: ServiceInfo[] = [svcA]): MeshSnapshot {
  return MeshSnapshot.from({ namespaces, pods, services }, 7);
}

test('mode: pod annotation wins over the namespace label', () => {
  const ns = [{ name: 'demo', labels: { 'nodemesh.dev/mode': 'sidecar' } }];
  const s = snapshot([], ns);
  assert.equal(s.effectiveMode(pod('p', { annotations: { 'nodemesh.dev/mode': 'ambient' } })), 'ambient');
  assert.equal(s.effectiveMode(pod('p', { annotations: { 'nodemesh.dev/mode': 'off' } })), 'off');
  assert.equal(s.effectiveMode(pod('p')), 'sidecar');
  assert.match(s.modeDecision(pod('p')).reason, /namespace demo label/);
});

test('mode: default off; hostNetwork and the agent pod never captured', () => {
  const s = snapshot([], [{ name: 'demo', labels: { 'nodemesh.dev/mode': 'ambient' } }]);
  assert.equal(snapshot([]).effectiveMode(pod('p')), 'off');
  assert.equal(s.effectiveMode(pod('p', { hostNetwork: true, annotations: { 'nodemesh.dev/mode': 'ambient' } })), 'off');
  assert.equal(s.effectiveMode(pod('agent'), { agentPodKey: 'demo/agent' }), 'off');
  assert.equal(s.effectiveMode(pod('other'), { agentPodKey: 'demo/agent' }), 'ambient');
  // A namespace label in another namespace does not leak.
  assert.equal(s.effectiveMode(pod('p', { namespace: 'prod' })), 'off');
});

test('lookups by pod IP and cluster IP', () => {
  const s = snapshot([pod('a1', { ips: ['10.244.1.11', 'fd00:244:1::11'] }), pod('h', { ips: ['10.255.0.1'], hostNetwork: true })]);
  assert.equal(s.version, 7);
  assert.equal(s.podByIP('10.244.1.11')?.name, 'a1');
  assert.equal(s.podByIP('::ffff:10.244.1.11')?.name, 'a1');
  assert.equal(s.podByIP('FD00:244:1:0::11')?.name, 'a1');
  assert.equal(s.podByIP('10.255.0.1'), undefined, 'hostNetwork pods are not found by address');
  assert.equal(s.serviceByClusterIP('10.96.0.10', 80)?.port?.name, 'http');
  assert.equal(s.serviceByClusterIP('fd00:96::10', 81)?.service.name, 'a');
  assert.equal(s.serviceByClusterIP('10.96.0.10', 82), undefined);
  assert.equal(s.serviceByClusterIP('10.96.0.10', 80, 'UDP'), undefined);
  assert.equal(s.serviceByClusterIP('10.96.0.10')?.port, undefined);
});

test('endpoints: selector, readiness, named and numbered target ports, family', () => {
  const pods = [
    pod('a1', { ips: ['10.244.1.11', 'fd00:244:1::11'] }),
    pod('a2', { ips: ['10.244.1.12'], ready: false }),
    pod('a3', { ips: ['10.244.2.13'], containerPorts: [] }),
    pod('b1', { ips: ['10.244.2.11'], labels: { app: 'b' } }),
    pod('x', { ips: ['10.244.2.14'], namespace: 'other' }),
  ];
  const s = snapshot(pods);
  assert.deepEqual(s.endpointsFor('demo/a', 'http').map((e) => `${e.address}:${e.port} ${e.podKey}`), ['10.244.1.11:8080 demo/a1']);
  assert.deepEqual(s.endpointsFor(svcA, 81).map((e) => `${e.address}:${e.port}`), ['10.244.1.11:9000', '10.244.2.13:9000']);
  assert.deepEqual(s.endpointsFor('demo/a', 81, { includeNotReady: true }).map((e) => `${e.address}:${e.ready}`), ['10.244.1.11:true', '10.244.1.12:false', '10.244.2.13:true']);
  assert.deepEqual(s.endpointsFor('demo/a', 80, { family: 6 }).map((e) => e.address), ['fd00:244:1::11']);
  assert.deepEqual(resolveEndpoints({ ...svcA, selector: undefined }, svcA.ports[0]!, pods), []);
  assert.deepEqual(s.endpointsFor('demo/missing', 80), []);
});

test('a snapshot is immutable and does not share the input objects', () => {
  const input = pod('a1');
  const s = snapshot([input]);
  input.labels.app = 'changed';
  const stored = s.pods.get('demo/a1')!;
  assert.equal(stored.labels.app, 'a');
  assert.throws(() => {
    (stored.labels as Record<string, string>).app = 'x';
  }, TypeError);
  assert.throws(() => {
    (s as unknown as { version: number }).version = 8;
  }, TypeError);
});

test('a shared pod IP resolves to the same pod whatever the order pods came in, and through changes', () => {
  const a = pod('a', { ips: ['10.244.1.50'] });
  const b = pod('b', { ips: ['10.244.1.50'] });
  assert.equal(snapshot([a, b]).podByIP('10.244.1.50')?.name, 'a');
  assert.equal(snapshot([b, a]).podByIP('10.244.1.50')?.name, 'a', 'the smallest namespace/name, not the first to arrive');
  const first = MeshSnapshot.from({ namespaces: [], pods: [a, b], services: [svcA] }, 1);
  const without = MeshSnapshot.from({ namespaces: [], pods: [b], services: [svcA] }, 2, first);
  assert.equal(without.podByIP('10.244.1.50')?.name, 'b', 'the other holder takes over when one goes');
  assert.equal(first.podByIP('10.244.1.50')?.name, 'a', 'the earlier snapshot is unchanged');
  const moved = MeshSnapshot.from({ namespaces: [], pods: [{ ...b, ips: ['10.244.1.51'] }], services: [svcA] }, 3, without);
  assert.equal(moved.podByIP('10.244.1.50'), undefined);
  assert.equal(moved.podByIP('10.244.1.51')?.name, 'b');
  assert.equal(without.podByIP('10.244.1.50')?.name, 'b');
});
