import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseK8sYaml } from '../../config/k8s-yaml';
import { convertObjects } from '../../config/objects';
import { istioPolicy, meshPolicy } from '../../policy/server/authorization/testing';
import { client, localServer, meshConfig, meshConfigWithPeerAuthentication } from '../decide-testkit';
import { authorizeConnection, decideInbound } from './decide';

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

// ---------------------------------------------------------------------------- authorization

function withPolicies(yaml: string) {
  const parsed = parseK8sYaml(yaml, 'authz.yaml');
  assert.deepEqual(parsed.problems, []);
  const { others, rejected } = convertObjects(parsed.objects);
  assert.deepEqual(rejected, []);
  const c = meshConfig(undefined, others);
  assert.deepEqual(c.rejected, []);
  return c;
}

const CLIENT = 'spiffe://cluster.local/ns/demo/sa/sa-client';
const toServer = { target: { address: '10.244.1.20', port: 8080 }, localPod: localServer };
const onlyClient = withPolicies(meshPolicy('demo', 'only-client', `{ targetRefs: [{ group: "", kind: Pod, selector: { matchLabels: { app: server } } }], action: ALLOW, enforcementLevel: Network,
  rules: [{ sources: [{ type: ServiceAccount, serviceAccount: { name: sa-client } }] }] }`));

test('authorization at L4: an ALLOW policy for service account A admits A and refuses B with 403, naming the policy', () => {
  const a = decideInbound(onlyClient, { ...toServer, peer: '10.244.1.10', peerIdentity: CLIENT });
  assert.equal(a.kind, 'deliver');
  assert.equal(a.kind === 'deliver' && a.authorization, 'connection', 'no HTTP rule: authorized once, relayed as bytes');
  assert.equal(a.kind === 'deliver' && a.authz?.decidedBy?.policy, 'demo/only-client');
  const b = decideInbound(onlyClient, { ...toServer, peer: '10.244.2.20', peerIdentity: SERVER_2 });
  assert.equal(b.kind, 'refuse');
  if (b.kind !== 'refuse') return;
  assert.equal(b.status, 403);
  assert.equal(b.policy, 'none', 'no rule matched: Envoy\'s matched_policy[none]');
  assert.equal(b.authz?.verdict, 'deny');
  assert.match(b.reason, /connection from spiffe:\/\/cluster\.local\/ns\/demo\/sa\/sa-server-2 to demo\/server-1 port 8080 refused: no rule of the ALLOW policies that apply \(XAuthorizationPolicy demo\/only-client\) matched/);
  assert.equal(decideInbound(onlyClient, { ...toServer, peer: '10.244.1.10', peerIdentity: CLIENT, target: { address: '10.244.1.10', port: 8080 }, localPod: client }).kind, 'deliver', 'another workload is not selected');
});

test('authorization at L4: DENY wins over ALLOW; plaintext never matches principal rules', () => {
  const set = withPolicies(istioPolicy('demo', 'allow-all', '{ rules: [{}] }') + istioPolicy('demo', 'deny-server-2', '{ action: DENY, rules: [{ from: [{ source: { principals: ["cluster.local/ns/demo/sa/sa-server-2"] } }] }] }'));
  const d = decideInbound(set, { ...toServer, peer: '10.244.2.20', peerIdentity: SERVER_2 });
  assert.equal(d.kind === 'refuse' && d.policy, 'demo/deny-server-2');
  assert.match(d.kind === 'refuse' ? d.reason : '', /denied by AuthorizationPolicy demo\/deny-server-2 \(DENY\), rule 0/);
  assert.equal(decideInbound(set, { ...toServer, peer: '10.244.1.10', peerIdentity: CLIENT }).kind, 'deliver');
  const principals = withPolicies(istioPolicy('demo', 'mesh-only', '{ rules: [{ from: [{ source: { principals: ["*"] } }] }] }'));
  const plain = decideInbound(principals, { ...toServer, peer: '10.244.1.10' });
  assert.equal(plain.kind === 'refuse' && plain.status, 403, 'plaintext has no principal');
  assert.equal(decideInbound(principals, { ...toServer, peer: '10.244.1.10', peerIdentity: CLIENT }).kind, 'deliver');
  const strict = meshConfigWithPeerAuthentication({ mtls: { mode: 'STRICT' } });
  const pa = decideInbound(strict, { ...toServer, peer: '10.244.9.9' });
  assert.equal(pa.kind === 'refuse' && pa.authz, undefined, 'a PeerAuthentication refusal is not an authorization one');
});

test('HTTP rules on the port: authorized per request; as bytes (not HTTP) their DENY fails closed and their ALLOW cannot match', () => {
  const denyAdmin = withPolicies(istioPolicy('demo', 'deny-admin', '{ action: DENY, rules: [{ to: [{ operation: { paths: ["/admin*"] } }] }] }'));
  const d = decideInbound(denyAdmin, { ...toServer, peer: '10.244.1.10', peerIdentity: CLIENT });
  assert.equal(d.kind === 'deliver' && d.authorization, 'per-request');
  const tcp = authorizeConnection(denyAdmin, localServer, { ...toServer, peer: '10.244.1.10', peerIdentity: CLIENT });
  assert.equal(tcp?.policy, 'demo/deny-admin');
  assert.match(tcp?.reason ?? '', /fails closed/);
  const allowGet = withPolicies(istioPolicy('demo', 'get-only', '{ rules: [{ to: [{ operation: { methods: [GET] } }] }] }'));
  assert.equal(authorizeConnection(allowGet, localServer, { ...toServer, peer: '10.244.1.10', peerIdentity: CLIENT })?.policy, 'none');
  const scoped = withPolicies(istioPolicy('demo', 'deny-admin', '{ action: DENY, rules: [{ to: [{ operation: { paths: ["/admin*"], ports: ["9090"] } }] }] }'));
  const other = decideInbound(scoped, { ...toServer, peer: '10.244.1.10', peerIdentity: CLIENT });
  assert.equal(other.kind === 'deliver' && other.authorization, 'connection', 'rules confined to another port cost nothing here');
});
