import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, type webcrypto } from 'node:crypto';
import { CertificateAuthority, generateRoot } from './certificate-authority';
import { certificateFacts } from './certificate-facts';
import { workloadKeyAndCsr } from './workload-csr';
import { x509 } from './x509-library';

const ID = 'spiffe://cluster.local/ns/demo/sa/web';

test('a CSR made for a workload is issued as an X.509-SVID that chains to the root', async () => {
  const root = await generateRoot('cluster.local');
  const ca = await CertificateAuthority.load(root);
  const { csrPem } = await workloadKeyAndCsr(ID);
  const issued = await ca.issue(csrPem, ID, 120_000);
  const leaf = new X509Certificate(issued.chainPem);
  const rootCert = new X509Certificate(root.certPem);
  assert.ok(leaf.checkIssued(rootCert));
  assert.ok(leaf.verify(rootCert.publicKey));
  assert.equal(leaf.ca, false);
  assert.ok(!leaf.subject, 'the SAN is the leaf certificate\'s only name');
  const facts = certificateFacts(leaf);
  assert.equal(facts.spiffeId, ID);
  const lifetime = facts.notAfter.getTime() - Date.now();
  assert.ok(lifetime > 100_000 && lifetime <= 120_000, `lifetime ${lifetime}`);
  assert.equal(leaf.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  assert.equal(issued.trustBundlePem, root.certPem);
});

test('the identity is the CA\'s: a CSR asking for another SPIFFE ID gets the one the CA authorised', async () => {
  const ca = await CertificateAuthority.load(await generateRoot('cluster.local'));
  const { csrPem } = await workloadKeyAndCsr('spiffe://cluster.local/ns/kube-system/sa/admin');
  const issued = await ca.issue(csrPem, ID);
  assert.equal(certificateFacts(issued.chainPem).spiffeId, ID);
});

test('a CSR whose signature does not verify, or with an RSA key, is refused with ERR_NM_CSR_INVALID', async () => {
  const ca = await CertificateAuthority.load(await generateRoot('cluster.local'));
  await assert.rejects(ca.issue('not a csr', ID), (e: Error & { code?: string }) => e.code === 'ERR_NM_CSR_INVALID');
  const lib = x509();
  const subtle = (await import('node:crypto')).webcrypto.subtle;
  const rsa = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };
  const keys = (await subtle.generateKey(rsa, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const csr = await lib.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: rsa, name: 'CN=x' });
  await assert.rejects(ca.issue(csr.toString('pem'), ID), /not ECDSA P-256/);
});

test('a CA key that does not match its certificate is refused with ERR_NM_CA_KEY', async () => {
  const a = await generateRoot('cluster.local');
  const b = await generateRoot('cluster.local');
  await assert.rejects(CertificateAuthority.load({ certPem: a.certPem, keyPem: b.keyPem }), (e: Error & { code?: string }) => e.code === 'ERR_NM_CA_KEY' && /does not belong/.test(e.message));
});

test('certificates never outlive their signer', async () => {
  const root = await generateRoot('cluster.local', 300_000);
  const ca = await CertificateAuthority.load(root);
  const issued = await ca.issue((await workloadKeyAndCsr(ID)).csrPem, ID, 24 * 3600_000);
  assert.ok(issued.notAfter.getTime() <= ca.notAfter.getTime());
});
