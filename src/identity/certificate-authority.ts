import { createPrivateKey, randomBytes, X509Certificate as NodeX509 } from 'node:crypto';
import { NodemeshError } from '../errors';
import type { webcrypto } from 'node:crypto';
import { generateP256, importP256, P256, pemBlocks, x509, type KeyPair } from './x509-library';

/** A certificate and its private key, PEM. */
export interface KeyAndCert {
  certPem: string;
  keyPem: string;
}

/** What the CA answers to a signing request: the chain (leaf first) and every root trusted now. */
export interface IssuedCertificate {
  chainPem: string;
  trustBundlePem: string;
  notAfter: Date;
}

/** Clock skew a freshly issued certificate tolerates between nodes. */
const BACKDATE_MS = 60_000;
/** Workload certificates: Istio's default, 24 h. */
export const DEFAULT_WORKLOAD_LIFETIME_MS = 24 * 3600_000;
/** The shortest lifetime the CA issues: renewal at half of it must still leave time to retry. */
export const MIN_WORKLOAD_LIFETIME_MS = 60_000;

/**
 * A self-signed root for a trust domain (ECDSA P-256, 10 years by default): what
 * `nodemesh identity` generates when no key was given, and what a root rotation adds.
 */
export async function generateRoot(trustDomain: string, lifetimeMs = 10 * 365 * 24 * 3600_000, now = new Date()): Promise<KeyAndCert> {
  const lib = x509();
  const { keys, keyPem } = await generateP256();
  const cert = await lib.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `O=${trustDomain}, CN=nodemesh root ${now.toISOString()}`,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + lifetimeMs),
    signingAlgorithm: P256,
    keys,
    extensions: [
      new lib.BasicConstraintsExtension(true, undefined, true),
      new lib.KeyUsagesExtension(lib.KeyUsageFlags.keyCertSign | lib.KeyUsageFlags.cRLSign | lib.KeyUsageFlags.digitalSignature, true),
      await lib.SubjectKeyIdentifierExtension.create(keys.publicKey),
      new lib.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${trustDomain}` }]),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem };
}

/**
 * The signing half of the CA: checks a CSR and issues an X.509-SVID for the SPIFFE ID the
 * caller has already authorised (the CSR's own names are never trusted: the identity is
 * the CA's decision). Leaf certificates: empty subject, one critical URI SAN, digital
 * signature, server and client auth, not a CA — as Istio's and SPIRE's.
 */
export class CertificateAuthority {
  private constructor(
    private readonly signerCert: InstanceType<ReturnType<typeof x509>['X509Certificate']>,
    private readonly signingKey: KeyPair,
    /** Every root trusted now (the signer's root, and during a rollover the other one), PEM. */
    readonly trustBundlePem: string,
    /** The signer itself when it is not a root (a cert-manager intermediate): sent after the leaf. */
    private readonly intermediatePem: string | undefined,
  ) {}

  static async load(signer: KeyAndCert, trustBundlePem?: string): Promise<CertificateAuthority> {
    const lib = x509();
    const blocks = pemBlocks(signer.certPem);
    if (blocks.length === 0) throw new NodemeshError('ERR_NM_CA_KEY', 'the CA certificate (tls.crt) holds no PEM certificate', { hint: 'give the CA a PEM certificate and its P-256 key (tls.crt, tls.key)' });
    const cert = new lib.X509Certificate(blocks[0]!);
    const basic = cert.getExtension(lib.BasicConstraintsExtension);
    if (!basic?.ca) throw new NodemeshError('ERR_NM_CA_KEY', 'the CA certificate (tls.crt) is not a CA certificate (basicConstraints CA:TRUE)', { hint: 'use a root or intermediate CA certificate' });
    let keys: KeyPair;
    try {
      keys = await importP256(signer.keyPem);
    } catch (err) {
      throw new NodemeshError('ERR_NM_CA_KEY', `the CA key (tls.key) is not a PKCS#8/SEC1 ECDSA P-256 key: ${(err as Error).message}`, { hint: 'nodemesh signs with ECDSA P-256 only; generate the key with that curve' });
    }
    const node = new NodeX509(blocks[0]!);
    if (!node.checkPrivateKey(createPrivateKey(signer.keyPem))) {
      throw new NodemeshError('ERR_NM_CA_KEY', 'the CA key (tls.key) does not belong to the CA certificate (tls.crt)', { hint: 'give the key that matches the certificate' });
    }
    const selfSigned = node.checkIssued(node);
    const bundle = trustBundlePem && pemBlocks(trustBundlePem).length > 0 ? trustBundlePem : selfSigned ? blocks[0]! : undefined;
    if (!bundle) throw new NodemeshError('ERR_NM_CA_KEY', 'the CA certificate is an intermediate and no root was given (ca.crt)', { hint: 'add the root that signed it as ca.crt' });
    return new CertificateAuthority(cert, keys, bundle, selfSigned ? undefined : blocks.join(''));
  }

  get notAfter(): Date {
    return this.signerCert.notAfter;
  }

  /** Signs `csrPem` as `spiffeId`, valid `lifetimeMs` from now (never past the signer's own expiry). */
  async issue(csrPem: string, spiffeId: string, lifetimeMs = DEFAULT_WORKLOAD_LIFETIME_MS, now = new Date()): Promise<IssuedCertificate> {
    const lib = x509();
    let csr: InstanceType<typeof lib.Pkcs10CertificateRequest>;
    try {
      csr = new lib.Pkcs10CertificateRequest(csrPem);
    } catch (err) {
      throw new NodemeshError('ERR_NM_CSR_INVALID', `the certificate request is not a PEM PKCS#10 CSR: ${(err as Error).message}`, { hint: 'send the CSR as PEM' });
    }
    if (!(await csr.verify())) throw new NodemeshError('ERR_NM_CSR_INVALID', 'the certificate request\'s signature does not verify (no proof of the private key)', { hint: 'sign the CSR with the key it carries' });
    const algorithm = csr.publicKey.algorithm as webcrypto.EcKeyAlgorithm;
    if (algorithm.name !== 'ECDSA' || algorithm.namedCurve !== 'P-256') {
      throw new NodemeshError('ERR_NM_CSR_INVALID', `the certificate request's key is ${algorithm.name}${algorithm.namedCurve ? ` ${algorithm.namedCurve}` : ''}, not ECDSA P-256`, { hint: 'workload keys are ECDSA P-256' });
    }
    const notAfter = new Date(Math.min(now.getTime() + lifetimeMs, this.signerCert.notAfter.getTime()));
    const publicKey = await csr.publicKey.export();
    const leaf = await lib.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: '',
      issuer: this.signerCert.subject,
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter,
      signingAlgorithm: P256,
      publicKey,
      signingKey: this.signingKey.privateKey,
      extensions: [
        new lib.BasicConstraintsExtension(false, undefined, true),
        new lib.KeyUsagesExtension(lib.KeyUsageFlags.digitalSignature | lib.KeyUsageFlags.keyEncipherment, true),
        new lib.ExtendedKeyUsageExtension([lib.ExtendedKeyUsage.serverAuth, lib.ExtendedKeyUsage.clientAuth]),
        await lib.AuthorityKeyIdentifierExtension.create(this.signingKey.publicKey),
        // Critical: the subject is empty, so the SAN is the certificate's only name (RFC 5280 4.2.1.6).
        new lib.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }], true),
      ],
    });
    return { chainPem: leaf.toString('pem') + '\n' + (this.intermediatePem ?? ''), trustBundlePem: this.trustBundlePem, notAfter };
  }

  /** A serving certificate for the CA's own HTTPS endpoint (DNS names and IPs), with its key. */
  async issueServing(names: { dns: string[]; ips: string[] }, lifetimeMs = 365 * 24 * 3600_000, now = new Date()): Promise<KeyAndCert & { chainPem: string }> {
    const lib = x509();
    const { keys, keyPem } = await generateP256();
    const leaf = await lib.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=${names.dns[0] ?? names.ips[0] ?? 'nodemesh-identity'}`,
      issuer: this.signerCert.subject,
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter: new Date(Math.min(now.getTime() + lifetimeMs, this.signerCert.notAfter.getTime())),
      signingAlgorithm: P256,
      publicKey: keys.publicKey,
      signingKey: this.signingKey.privateKey,
      extensions: [
        new lib.BasicConstraintsExtension(false, undefined, true),
        new lib.KeyUsagesExtension(lib.KeyUsageFlags.digitalSignature, true),
        new lib.ExtendedKeyUsageExtension([lib.ExtendedKeyUsage.serverAuth]),
        new lib.SubjectAlternativeNameExtension([...names.dns.map((value) => ({ type: 'dns' as const, value })), ...names.ips.map((value) => ({ type: 'ip' as const, value }))]),
      ],
    });
    const certPem = leaf.toString('pem') + '\n';
    return { certPem, keyPem, chainPem: certPem + (this.intermediatePem ?? '') };
  }
}

/** A positive random 128-bit serial number, hex (RFC 5280: at most 20 octets, unpredictable). */
function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f;
  return bytes.toString('hex');
}
