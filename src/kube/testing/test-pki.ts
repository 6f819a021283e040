import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../util/exec';

/**
 * The keys and certificates a test control plane needs, made by the openssl command (never
 * by hand): a CA (which also signs CSRs, as a cluster's does), kube-apiserver's serving
 * certificate for 127.0.0.1 signed by it, and the service-account token signing key.
 * Everything is valid for two days: long enough for any test, short enough to be harmless
 * if a directory were ever left behind.
 */

export interface TestPki {
  caCert: string;
  caKey: string;
  servingCert: string;
  servingKey: string;
  /** PKCS#8 EC private key that signs service-account tokens (its public half verifies them). */
  serviceAccountKey: string;
  /** Its public half (SPKI), which kube-apiserver verifies tokens with. */
  serviceAccountPublicKey: string;
}

/** run() rejects with the command line and openssl's stderr when it fails. */
async function openssl(args: string[]): Promise<void> {
  await run('openssl', args, { timeoutMs: 30_000 });
}

export async function makeTestPki(dir: string): Promise<TestPki> {
  const p = (name: string) => join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl(['req', '-x509', ...ec, '-keyout', p('ca.key'), '-out', p('ca.crt'), '-days', '2', '-subj', '/CN=nodemesh-test-ca',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature']);
  await openssl(['req', ...ec, '-keyout', p('serving.key'), '-out', p('serving.csr'), '-subj', '/CN=kube-apiserver']);
  writeFileSync(p('serving.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n');
  await openssl(['x509', '-req', '-in', p('serving.csr'), '-CA', p('ca.crt'), '-CAkey', p('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', p('serving.ext'), '-out', p('serving.crt')]);
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  writeFileSync(p('sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  writeFileSync(p('sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
  return { caCert: p('ca.crt'), caKey: p('ca.key'), servingCert: p('serving.crt'), servingKey: p('serving.key'), serviceAccountKey: p('sa.key'), serviceAccountPublicKey: p('sa.pub') };
}
