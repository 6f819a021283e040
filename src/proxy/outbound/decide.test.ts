import { test } from 'node:test';
import assert from 'node:assert/strict';
import { client, localServer, meshConfig, meshPod, meshConfigWithPeerAuthentication, remoteOther, remoteServer, sidecarPod } from '../decide-testkit';
import { decideOutbound, decideTransport, type TransportFacts } from './decide';

const config = meshConfig();
const v4 = (address: string, port: number) => ({ family: 4 as const, address, port });

test('a Service port is resolved to its ready endpoints of the connection family, with its policy key and the source identity', () => {
  const d = decideOutbound(config, { source: client, original: v4('10.96.0.10', 80), probePort: 15009 });
  assert.equal(d.kind, 'service');
  if (d.kind !== 'service') return;
  assert.equal(d.service.name, 'server');
  assert.equal(d.port.port, 80);
  assert.deepEqual(d.endpoints.map((e) => `${e.address}:${e.port}`).sort(), ['10.244.1.20:8080', '10.244.2.20:8080']);
  assert.equal(d.policyKey, 'demo/server');
  assert.equal(d.protocol, undefined, 'no appProtocol: sniffing decides');
  assert.equal(d.source.principal, 'spiffe://cluster.local/ns/demo/sa/sa-client');
  const v6 = decideOutbound(config, { source: client, original: { family: 6, address: 'fd00:96::10', port: 80 }, probePort: 15009 });
  assert.ok(v6.kind === 'service');
  assert.deepEqual(v6.kind === 'service' && v6.endpoints.map((e) => e.address), ['fd00:244:2::20']);
});

test("a Service port's appProtocol says the protocol, so nothing is sniffed", () => {
  const d = decideOutbound(config, { source: client, original: v4('10.96.0.10', 9090), probePort: 15009 });
  assert.ok(d.kind === 'service');
  assert.equal(d.kind === 'service' && d.protocol, 'h2');
});

test('a pod IP goes to that pod, with its identity; an address outside the mesh passes through', () => {
  const d = decideOutbound(config, { source: client, original: v4('10.244.2.20', 8080), probePort: 15009 });
  assert.ok(d.kind === 'pod');
  assert.equal(d.kind === 'pod' && d.pod.name, 'server-2');
  assert.equal(d.kind === 'pod' && d.destination.principal, 'spiffe://cluster.local/ns/demo/sa/sa-server-2');
  assert.equal(decideOutbound(config, { source: client, original: v4('192.0.2.7', 443), probePort: 15009 }).kind, 'passthrough');
  // A cluster IP on a port the Service does not have is not the Service.
  assert.equal(decideOutbound(config, { source: client, original: v4('10.96.0.10', 81), probePort: 15009 }).kind, 'passthrough');
});

test("the capture self-test is the pod's own IP on the probe port, and only that", () => {
  assert.equal(decideOutbound(config, { source: client, original: v4('10.244.1.10', 15009), probePort: 15009 }).kind, 'probe');
  assert.equal(decideOutbound(config, { source: client, original: v4('10.244.1.20', 15009), probePort: 15009 }).kind, 'pod');
});

function facts(extra: Partial<TransportFacts> = {}): TransportFacts {
  const local = new Map([client, localServer].flatMap((p) => p.ips.map((ip) => [ip, p] as const)));
  return { nodeName: 'node1', tunnelEnabled: true, tunnelPort: 15008, sourceEnrolled: true, localPodAt: (ip) => local.get(ip), ...extra };
}

test('an enrolled pod of this node is reached by in-process hand-over, expecting its identity', () => {
  const d = decideTransport(config, facts(), client, { address: '10.244.1.20', port: 8080 });
  assert.equal(d.kind, 'local');
  assert.equal(d.kind === 'local' && d.pod.name, 'server-1');
  assert.equal(d.kind === 'local' && d.expect.principal, 'spiffe://cluster.local/ns/demo/sa/sa-server-1');
});

test("an ambient pod of another node is reached through that node's tunnel, at its lowest enrolled IP of the family", () => {
  const d = decideTransport(config, facts(), client, { address: '10.244.2.20', port: 8080 });
  assert.equal(d.kind, 'tunnel');
  if (d.kind !== 'tunnel') return;
  assert.equal(d.node, 'node2');
  assert.deepEqual(d.via, { address: '10.244.2.20', port: 15008 }, 'sorted as strings: 10.244.2.20 < 10.244.2.5');
  assert.equal(d.present.principal, 'spiffe://cluster.local/ns/demo/sa/sa-client');
  assert.equal(d.expect.principal, 'spiffe://cluster.local/ns/demo/sa/sa-server-2');
  const v6 = decideTransport(config, facts(), client, { address: 'fd00:244:2::20', port: 8080 });
  assert.deepEqual(v6.kind === 'tunnel' && v6.via, { address: 'fd00:244:2::20', port: 15008 });
  // Without the other pod, node2's only IPv4 is server-2's own.
  const lone = meshConfig([client, remoteServer]);
  const d2 = decideTransport(lone, facts(), client, { address: '10.244.2.20', port: 8080 });
  assert.deepEqual(d2.kind === 'tunnel' && d2.via.address, '10.244.2.20');
  void remoteOther;
});

test('direct: an address outside the mesh, a pod not in the mesh, the tunnel turned off', () => {
  assert.equal(decideTransport(config, facts(), client, { address: '192.0.2.7', port: 8080 }).kind, 'direct');
  const outsider = meshPod('outsider', 'node2', ['10.244.2.40'], { annotations: {} });
  assert.equal(decideTransport(meshConfig([client, outsider]), facts(), client, { address: '10.244.2.40', port: 8080 }).kind, 'direct');
  assert.equal(decideTransport(config, facts({ tunnelEnabled: false }), client, { address: '10.244.2.20', port: 8080 }).kind, 'direct');
  assert.equal(decideTransport(config, facts({ tunnelEnabled: false }), client, { address: sidecarPod.ips[0]!, port: 8080 }).kind, 'direct');
});

test('sidecars: a pod with a sidecar is reached through its own 15008 (on any node); a sidecar reaches ambient pods through their node', () => {
  const toSidecar = decideTransport(config, facts(), client, { address: sidecarPod.ips[0]!, port: 8080 });
  assert.equal(toSidecar.kind, 'tunnel');
  if (toSidecar.kind !== 'tunnel') return;
  assert.deepEqual(toSidecar.via, { address: '10.244.2.30', port: 15008 }, 'the sidecar answers for its own pod only');
  assert.equal(toSidecar.node, 'sidecar demo/legacy');
  assert.equal(toSidecar.expect.principal, 'spiffe://cluster.local/ns/demo/sa/sa-legacy');
  const sameNodeSidecar = meshPod('legacy-a', 'node1', ['10.244.1.30'], { annotations: { 'nodemesh.dev/mode': 'sidecar' } });
  const near = decideTransport(meshConfig([client, sameNodeSidecar]), facts(), client, { address: '10.244.1.30', port: 8080 });
  assert.deepEqual(near.kind === 'tunnel' && near.via, { address: '10.244.1.30', port: 15008 }, 'a sidecar pod of this node too: it is not this proxy\'s to serve');
  // From a sidecar (no node): an ambient pod through its node's tunnel address, a sidecar pod directly.
  const sidecarFacts = facts({ nodeName: undefined, localPodAt: (ip) => (sidecarPod.ips.includes(ip) ? sidecarPod : undefined) });
  const fromSidecar = decideTransport(config, sidecarFacts, sidecarPod, { address: '10.244.2.20', port: 8080 });
  assert.deepEqual(fromSidecar.kind === 'tunnel' && [fromSidecar.node, fromSidecar.via.address, fromSidecar.present.principal], ['node2', '10.244.2.20', 'spiffe://cluster.local/ns/demo/sa/sa-legacy']);
  const toLocalAmbient = decideTransport(config, sidecarFacts, sidecarPod, { address: '10.244.1.20', port: 8080 });
  assert.deepEqual(toLocalAmbient.kind === 'tunnel' && toLocalAmbient.via.address, '10.244.1.20');
});

test('a source pod released from this node may open nothing more, but local hand-over still names the pod', () => {
  assert.equal(decideTransport(config, facts({ sourceEnrolled: false }), client, { address: '10.244.2.20', port: 8080 }).kind, 'source-gone');
  assert.equal(decideTransport(config, facts({ sourceEnrolled: false }), client, { address: '192.0.2.7', port: 8080 }).kind, 'source-gone');
  assert.equal(decideTransport(config, facts({ sourceEnrolled: false }), client, { address: '10.244.1.20', port: 8080 }).kind, 'local');
});

test('PeerAuthentication: a DISABLE port is reached directly in plaintext; a STRICT one through the tunnel, which never falls back to plaintext', () => {
  const disabled = meshConfigWithPeerAuthentication({ selector: { matchLabels: { app: 'server' } }, portLevelMtls: { '9090': { mode: 'DISABLE' } } });
  assert.equal(decideTransport(disabled, facts(), client, { address: '10.244.2.20', port: 9090 }).kind, 'direct');
  const other = decideTransport(disabled, facts(), client, { address: '10.244.2.20', port: 8080 });
  assert.deepEqual(other.kind === 'tunnel' && other.strict, false, 'PERMISSIVE: the tunnel, and plaintext when no proxy answers there');
  const strict = decideTransport(meshConfigWithPeerAuthentication({ mtls: { mode: 'STRICT' } }), facts(), client, { address: '10.244.2.20', port: 8080 });
  assert.deepEqual(strict.kind === 'tunnel' && strict.strict, true);
});
