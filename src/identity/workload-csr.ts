import { generateP256, P256, x509 } from './x509-library';

/**
 * A fresh P-256 key and a CSR for a workload, made where the certificate will be used (the
 * agent): the key never leaves the node. The CSR names the SPIFFE ID it asks for, but the CA
 * decides the identity from what it checked, not from the CSR.
 */
export async function workloadKeyAndCsr(spiffeId: string): Promise<{ keyPem: string; csrPem: string }> {
  const lib = x509();
  const { keys, keyPem } = await generateP256();
  const csr = await lib.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: P256,
    extensions: [new lib.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }])],
  });
  return { keyPem, csrPem: csr.toString('pem') + '\n' };
}
