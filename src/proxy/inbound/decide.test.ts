import { test } from 'node:test';
import assert from 'node:assert/strict';
import { client, localServer, meshConfig, remoteServer } from '../decide-testkit';
import { decideInbound } from './decide';

const config = meshConfig();

test('a tunnel stream for a pod of this node is delivered, naming the source by the peer pod', () => {
  const d = decideInbound(config, { target: { address: '10.244.1.20', port: 8080 }, localPod: localServer, peer: '::ffff:10.244.2.20', claimedSource: 'demo/someone-else' });
  assert.equal(d.kind, 'deliver');
  if (d.kind !== 'deliver') return;
  assert.equal(d.pod.name, 'server-1');
  assert.deepEqual(d.target, { address: '10.244.1.20', port: 8080 });
  assert.equal(d.destination.principal, 'spiffe://cluster.local/ns/demo/sa/sa-server-1');
  // The peer address is the source pod's (the source proxy connects from inside it): it wins over the claim.
  assert.equal(d.source?.principal, 'spiffe://cluster.local/ns/demo/sa/sa-server-2');
  void remoteServer;
});

test('with no pod at the peer address, the source is what the stream claims; a malformed claim names nobody', () => {
  const claimed = decideInbound(config, { target: { address: '10.244.1.20', port: 8080 }, localPod: localServer, peer: '192.0.2.50', claimedSource: 'prod/billing' });
  assert.deepEqual(claimed.kind === 'deliver' && claimed.source, { namespace: 'prod', name: 'billing' });
  const malformed = decideInbound(config, { target: { address: '10.244.1.20', port: 8080 }, localPod: localServer, peer: '192.0.2.50', claimedSource: 'billing' });
  assert.equal(malformed.kind === 'deliver' && malformed.source, undefined);
});

test('a stream for a pod that is not enrolled on this node is refused with 404: the proxy is no open relay', () => {
  const d = decideInbound(config, { target: { address: '10.244.2.20', port: 8080 }, localPod: undefined, peer: '10.244.1.10' });
  assert.deepEqual(d, { kind: 'refuse', status: 404, reason: '10.244.2.20 is not an enrolled pod of this node' });
});

test('a plaintext connection captured on 15006 is delivered to the listening pod', () => {
  const d = decideInbound(config, { target: { address: '10.244.1.10', port: 8080 }, localPod: client, peer: '10.244.1.20' });
  assert.equal(d.kind === 'deliver' && d.pod.name, 'client');
  assert.equal(d.kind === 'deliver' && d.source?.principal, 'spiffe://cluster.local/ns/demo/sa/sa-server-1');
});
