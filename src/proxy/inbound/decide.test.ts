import { test } from 'node:test';
import assert from 'node:assert/strict';
import { client, localServer, meshConfig, meshConfigWithPeerAuthentication } from '../decide-testkit';
import { decideInbound } from './decide';

const config = meshConfig();

const SERVER_2 = 'spiffe://cluster.local/ns/demo/sa/sa-server-2';

test('a tunnel stream for a pod of this node is delivered, the source named by its certificate and the peer pod that has that identity', () => {
  const d = decideInbound(config, { target: { address: '10.244.1.20', port: 8080 }, localPod: localServer, peer: '::ffff:10.244.2.20', peerIdentity: SERVER_2 });
  assert.equal(d.kind, 'deliver');
  if (d.kind !== 'deliver') return;
  assert.equal(d.pod.name, 'server-1');
  assert.deepEqual(d.target, { address: '10.244.1.20', port: 8080 });
  assert.equal(d.destination.principal, 'spiffe://cluster.local/ns/demo/sa/sa-server-1');
  assert.equal(d.source?.principal, SERVER_2);
  assert.equal(d.source?.name, 'server', 'the workload of the pod at the peer address, which has that identity');
});

test('the certificate wins over the address: a peer pod of another identity does not name the source', () => {
  const other = 'spiffe://cluster.local/ns/prod/sa/billing';
  const d = decideInbound(config, { target: { address: '10.244.1.20', port: 8080 }, localPod: localServer, peer: '10.244.2.20', peerIdentity: other });
  assert.deepEqual(d.kind === 'deliver' && d.source, { namespace: 'prod', name: 'unknown', principal: other });
  const noPod = decideInbound(config, { target: { address: '10.244.1.20', port: 8080 }, localPod: localServer, peer: '192.0.2.50', peerIdentity: other });
  assert.deepEqual(noPod.kind === 'deliver' && noPod.source, { namespace: 'prod', name: 'unknown', principal: other });
});

test('a stream for a pod that is not enrolled on this node is refused with 404: the proxy is no open relay', () => {
  const d = decideInbound(config, { target: { address: '10.244.2.20', port: 8080 }, localPod: undefined, peer: '10.244.1.10' });
  assert.deepEqual(d, { kind: 'refuse', status: 404, reason: '10.244.2.20 is not an enrolled pod of this node' });
});

test('a plaintext connection captured on 15006 is delivered to the listening pod; its source has no principal (nothing proved one)', () => {
  const d = decideInbound(config, { target: { address: '10.244.1.10', port: 8080 }, localPod: client, peer: '10.244.1.20' });
  assert.equal(d.kind === 'deliver' && d.pod.name, 'client');
  assert.equal(d.kind === 'deliver' && d.source?.namespace, 'demo');
  assert.equal(d.kind === 'deliver' && d.source?.principal, undefined);
});

test('STRICT: plaintext on 15006 is refused naming the PeerAuthentication; a tunnel stream to the same port is delivered', () => {
  const strict = meshConfigWithPeerAuthentication({ mtls: { mode: 'STRICT' } });
  const plain = decideInbound(strict, { target: { address: '10.244.1.20', port: 8080 }, localPod: localServer, peer: '10.244.9.9' });
  assert.equal(plain.kind, 'refuse');
  assert.equal(plain.kind === 'refuse' && plain.status, 403);
  assert.equal(plain.kind === 'refuse' && plain.policy, 'demo/pa');
  assert.match(plain.kind === 'refuse' ? plain.reason : '', /plaintext from 10\.244\.9\.9 to demo\/server-1 port 8080 refused: PeerAuthentication demo\/pa makes it STRICT/);
  const tunnel = decideInbound(strict, { target: { address: '10.244.1.20', port: 8080 }, localPod: localServer, peer: '10.244.2.20', peerIdentity: SERVER_2 });
  assert.equal(tunnel.kind, 'deliver');
});

test('PERMISSIVE ports of a STRICT workload, and DISABLE, still take plaintext', () => {
  const ported = meshConfigWithPeerAuthentication({ selector: { matchLabels: { app: 'server' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { '9090': { mode: 'PERMISSIVE' } } });
  assert.equal(decideInbound(ported, { target: { address: '10.244.1.20', port: 9090 }, localPod: localServer, peer: '10.244.9.9' }).kind, 'deliver');
  assert.equal(decideInbound(ported, { target: { address: '10.244.1.20', port: 8080 }, localPod: localServer, peer: '10.244.9.9' }).kind, 'refuse');
  const disabled = meshConfigWithPeerAuthentication({ mtls: { mode: 'DISABLE' } });
  assert.equal(decideInbound(disabled, { target: { address: '10.244.1.20', port: 8080 }, localPod: localServer, peer: '10.244.9.9' }).kind, 'deliver');
});
