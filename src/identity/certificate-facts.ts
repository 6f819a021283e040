import { X509Certificate } from 'node:crypto';
import { pemBlocks } from './x509-library';

/**
 * What nodemesh reads from a certificate it did not make: its SPIFFE ID and validity. Read
 * with Node's own X.509 parser (OpenSSL), so reading a peer's certificate never loads the
 * X.509 library.
 */
export interface CertificateFacts {
  spiffeId: string | undefined;
  notBefore: Date;
  notAfter: Date;
  serialNumber: string;
  fingerprint256: string;
}

export function certificateFacts(cert: X509Certificate | string | Buffer): CertificateFacts {
  const x = cert instanceof X509Certificate ? cert : new X509Certificate(cert);
  return {
    spiffeId: spiffeIdOf(x.subjectAltName),
    notBefore: new Date(x.validFrom),
    notAfter: new Date(x.validTo),
    serialNumber: x.serialNumber,
    fingerprint256: x.fingerprint256,
  };
}

/**
 * The one spiffe:// URI of a subjectAltName string ("URI:spiffe://..., DNS:..."). A SPIFFE
 * X.509-SVID has exactly one URI SAN; a certificate with several is not one, so none is
 * returned (the peer is then unauthenticated, never a guess).
 */
export function spiffeIdOf(subjectAltName: string | undefined): string | undefined {
  if (!subjectAltName) return undefined;
  const uris = subjectAltName.split(/,\s*/).filter((s) => s.startsWith('URI:')).map((s) => s.slice(4));
  return uris.length === 1 && uris[0]!.startsWith('spiffe://') ? uris[0] : undefined;
}

/** The first certificate of a PEM chain (the leaf). */
export function leafOf(chainPem: string): string {
  const first = pemBlocks(chainPem)[0];
  if (!first) throw new Error('no certificate in the PEM given');
  return first;
}
