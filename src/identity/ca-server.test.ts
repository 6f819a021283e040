import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { logger } from '../log';
import { pollUntil } from '../util/deadline';
import type { PodOnRecord } from './agent-authentication';
import { CaClient } from './ca-client';
import { CaServer } from './ca-server';
import { generateCaFiles, rotateRoot, tokenKey } from './ca-state';
import { certificateFacts } from './certificate-facts';
import { LocalTokenAuthenticator, mintLocalToken } from './local-token';
import { WorkloadCertificates } from './workload-certificates';
import { workloadKeyAndCsr } from './workload-csr';
import { pemBlocks } from './x509-library';

// The CA service over a unix socket with the local CA's tokens and an in-memory pod
// registry: the rules that make a stolen agent token worth its own node only.
const dir = mkdtempSync(join(tmpdir(), 'nm-ca-'));
const socket = join(dir, 'ca.sock');
const pods = new Map<string, PodOnRecord>([
  ['shop/web-1', { namespace: 'shop', name: 'web-1', nodeName: 'node-a', serviceAccount: 'web', terminated: false }],
  ['shop/db-1', { namespace: 'shop', name: 'db-1', nodeName: 'node-b', serviceAccount: 'db', terminated: false }],
  ['shop/job-1', { namespace: 'shop', name: 'job-1', nodeName: 'node-a', serviceAccount: 'batch', terminated: true }],
  ['shop/web-2', { namespace: 'shop', name: 'web-2', nodeName: 'node-a', serviceAccount: 'web', terminated: false }],
  ['shop/api-1', { namespace: 'shop', name: 'api-1', nodeName: 'node-a', serviceAccount: 'api', terminated: false }],
]);
let server: CaServer;
let bundle: string;

before(async () => {
  bundle = (await generateCaFiles(join(dir, 'state'), 'cluster.local')).trustBundlePem;
  const key = tokenKey(join(dir, 'state'));
  server = new CaServer({
    stateDir: join(dir, 'state'), trustDomain: 'cluster.local', workloadLifetimeMs: 120_000, servingNames: ['nodemesh-identity'],
    authenticator: new LocalTokenAuthenticator(() => key), pods: { get: (ns, name) => Promise.resolve(pods.get(`${ns}/${name}`)) }, log: logger('ca-test'),
  });
  await server.listen({ path: socket });
});
after(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

function client(token: string): CaClient {
  return new CaClient({ address: `unix:${socket}`, trustBundlePem: bundle, serverName: 'nodemesh-identity' }, () => token);
}
const tokenFor = (node: string, audience?: string) => mintLocalToken(tokenKey(join(dir, 'state')), { node, ...(audience ? { audience } : {}) });

test('an agent gets a 2-minute certificate for the service account of a pod on its own node', async () => {
  const { csrPem } = await workloadKeyAndCsr('spiffe://cluster.local/ns/shop/sa/web');
  const answer = await client(tokenFor('node-a')).sign({ csrPem, pod: { namespace: 'shop', name: 'web-1', serviceAccount: 'web' } });
  const facts = certificateFacts(answer.chainPem);
  assert.equal(facts.spiffeId, 'spiffe://cluster.local/ns/shop/sa/web');
  const left = facts.notAfter.getTime() - Date.now();
  assert.ok(left > 100_000 && left <= 120_000, `expires in ${left} ms`);
  assert.ok(new X509Certificate(answer.chainPem).checkIssued(new X509Certificate(answer.trustBundlePem)));
});

test('a malicious agent: a pod of another node, another service account, a finished pod, a pod that does not exist — all refused', async () => {
  const { csrPem } = await workloadKeyAndCsr('spiffe://cluster.local/ns/shop/sa/db');
  const a = client(tokenFor('node-a'));
  await assert.rejects(a.sign({ csrPem, pod: { namespace: 'shop', name: 'db-1', serviceAccount: 'db' } }), (e: Error & { code?: string }) => e.code === 'ERR_NM_CA_DENIED' && /runs on node node-b, not on the agent's node node-a/.test(e.message));
  await assert.rejects(a.sign({ csrPem, pod: { namespace: 'shop', name: 'web-1', serviceAccount: 'admin' } }), /runs as service account web, not admin/);
  await assert.rejects(a.sign({ csrPem, pod: { namespace: 'shop', name: 'job-1', serviceAccount: 'batch' } }), /has finished/);
  await assert.rejects(a.sign({ csrPem, pod: { namespace: 'shop', name: 'ghost', serviceAccount: 'web' } }), /does not exist/);
});

test('a sidecar\'s pod-bound token gets its own pod\'s certificate only, not another pod\'s of the same node', async () => {
  const key = tokenKey(join(dir, 'state'));
  const web1 = client(mintLocalToken(key, { node: 'node-a', pod: { namespace: 'shop', name: 'web-1', serviceAccount: 'web' } }));
  const { csrPem } = await workloadKeyAndCsr('spiffe://cluster.local/ns/shop/sa/web');
  const answer = await web1.sign({ csrPem, pod: { namespace: 'shop', name: 'web-1', serviceAccount: 'web' } });
  assert.equal(certificateFacts(answer.chainPem).spiffeId, 'spiffe://cluster.local/ns/shop/sa/web');
  // The same node, the same service account even: another pod's certificate is refused.
  await assert.rejects(web1.sign({ csrPem, pod: { namespace: 'shop', name: 'web-2', serviceAccount: 'web' } }), (e: Error & { code?: string }) => e.code === 'ERR_NM_CA_DENIED' && /bound to pod shop\/web-1: a workload's token gets its own pod's certificate, not shop\/web-2's/.test(e.message));
  await assert.rejects(web1.sign({ csrPem, pod: { namespace: 'shop', name: 'api-1', serviceAccount: 'api' } }), /bound to pod shop\/web-1/);
  // A token naming a service account its pod does not run as.
  const lying = client(mintLocalToken(key, { node: 'node-a', pod: { namespace: 'shop', name: 'api-1', serviceAccount: 'web' } }));
  await assert.rejects(lying.sign({ csrPem, pod: { namespace: 'shop', name: 'api-1', serviceAccount: 'api' } }), /the token is for service account web, but pod shop\/api-1 runs as api/);
});

test('a token for another audience, a forged token, or none: not authenticated', async () => {
  const { csrPem } = await workloadKeyAndCsr('spiffe://cluster.local/ns/shop/sa/web');
  const body = { csrPem, pod: { namespace: 'shop', name: 'web-1', serviceAccount: 'web' } };
  await assert.rejects(client(tokenFor('node-a', 'kubernetes')).sign(body), (e: Error & { code?: string }) => e.code === 'ERR_NM_CA_UNAUTHENTICATED' && /audience "kubernetes", not nodemesh-ca/.test(e.message));
  const forged = mintLocalToken(Buffer.alloc(32, 7), { node: 'node-a' });
  await assert.rejects(client(forged).sign(body), /signature does not verify/);
  await assert.rejects(client('').sign(body), (e: Error & { code?: string }) => e.code === 'ERR_NM_CA_UNAUTHENTICATED');
});

test('a CA that is down: the request fails with ERR_NM_CA_UNAVAILABLE, the agent\'s certificates report it and keep none', async () => {
  const down = new CaClient({ address: `unix:${join(dir, 'nothing.sock')}`, trustBundlePem: bundle, serverName: 'nodemesh-identity' }, () => tokenFor('node-a'));
  const certs = new WorkloadCertificates(down, bundle, logger('ca-test'));
  await assert.rejects(certs.ensure('spiffe://cluster.local/ns/shop/sa/web', 'shop/web-1', { namespace: 'shop', name: 'web-1', serviceAccount: 'web' }),
    (e: Error & { code?: string }) => e.code === 'ERR_NM_IDENTITY_UNAVAILABLE' && /cannot reach the CA/.test(e.message));
  assert.equal(certs.current('spiffe://cluster.local/ns/shop/sa/web'), undefined);
  certs.stop();
});

test('root rotation: staged roots reach the agents\' bundle before they sign; after activation new certificates chain to the new root, the old root stays trusted', async () => {
  const state = join(dir, 'state');
  const certs = new WorkloadCertificates(client(tokenFor('node-a')), bundle, logger('ca-test'));
  const id = 'spiffe://cluster.local/ns/shop/sa/web';
  const before = await certs.ensure(id, 'shop/web-1', { namespace: 'shop', name: 'web-1', serviceAccount: 'web' });
  const oldRoot = new X509Certificate(pemBlocks(bundle)[0]!);
  await rotateRoot(state, 'stage', 'cluster.local');
  certs.refreshBundleEvery(100);
  assert.ok(await pollUntil(() => pemBlocks(certs.trustBundlePem).length === 2, Date.now() + 10_000), 'the agent holds both roots');
  await rotateRoot(state, 'activate', 'cluster.local');
  const newRoot = new X509Certificate(readFileSync(join(state, 'tls.crt')));
  // A fresh request after the CA reloaded: signed by the new root.
  const after = client(tokenFor('node-a'));
  let byNewRoot = false;
  for (const deadline = Date.now() + 10_000; !byNewRoot && Date.now() < deadline;) {
    const answer = await after.sign({ csrPem: (await workloadKeyAndCsr(id)).csrPem, pod: { namespace: 'shop', name: 'web-1', serviceAccount: 'web' } });
    byNewRoot = new X509Certificate(answer.chainPem).checkIssued(newRoot);
    if (!byNewRoot) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(byNewRoot, 'the CA signs with the new root once activated (it reloads its files)');
  assert.ok(new X509Certificate(before.chainPem).checkIssued(oldRoot), 'the certificate issued before is the old root\'s, still in the bundle');
  await rotateRoot(state, 'retire', 'cluster.local');
  assert.equal(pemBlocks(readFileSync(join(state, 'ca.crt'), 'utf8')).length, 1);
  // A client that trusts the new root only still reaches the CA: its serving certificate follows the signer.
  const newOnly = new CaClient({ address: `unix:${socket}`, trustBundlePem: newRoot.toString(), serverName: 'nodemesh-identity' }, () => tokenFor('node-a'));
  let reached = false;
  for (const deadline = Date.now() + 10_000; !reached && Date.now() < deadline;) {
    reached = await newOnly.trustBundle().then((b) => pemBlocks(b.trustBundlePem).length === 1, () => false);
    if (!reached) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(reached, 'the CA serves with a certificate of the new root, and its bundle is the new root alone');
  certs.stop();
});

test('an agent of another trust domain refuses the certificate the CA issues (ERR_NM_CA_MISMATCH) and keeps none', async () => {
  const certs = new WorkloadCertificates(client(tokenFor('node-a')), bundle, logger('ca-test'));
  await assert.rejects(certs.ensure('spiffe://example.org/ns/shop/sa/web', 'shop/web-1', { namespace: 'shop', name: 'web-1', serviceAccount: 'web' }),
    (e: Error & { code?: string }) => e.code === 'ERR_NM_CA_MISMATCH' && /issued spiffe:\/\/cluster\.local\/ns\/shop\/sa\/web when spiffe:\/\/example\.org\/ns\/shop\/sa\/web was asked for/.test(e.message));
  assert.equal(certs.current('spiffe://example.org/ns/shop/sa/web'), undefined);
  certs.stop();
});
