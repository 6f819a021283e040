import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MeshSnapshot } from '../config/snapshot';
import { testPod } from '../mesh/testing';
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
