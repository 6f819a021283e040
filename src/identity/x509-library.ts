import { createPrivateKey, createPublicKey, webcrypto } from 'node:crypto';

/** WebCrypto's key pair type (Node's; the project has no DOM types). */
export type KeyPair = webcrypto.CryptoKeyPair;

/**
 * @peculiar/x509, loaded on first use: it builds certificates and CSRs from ASN.1 schemas
 * (so nothing here encodes ASN.1 by hand) on top of WebCrypto. It costs about 15 MiB of
 * heap when loaded, so a process that never signs or requests a certificate never loads
 * it. Its dependency injection container needs the reflect-metadata polyfill first.
 */
type X509 = typeof import('@peculiar/x509');

let loaded: X509 | undefined;

export function x509(): X509 {
  if (!loaded) {
    require('reflect-metadata');
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const lib = require('@peculiar/x509') as X509;
    lib.cryptoProvider.set(webcrypto as unknown as Parameters<X509['cryptoProvider']['set']>[0]);
    loaded = lib;
  }
  return loaded;
}

/** ECDSA P-256 with SHA-256: the algorithm of every key and signature nodemesh makes (as Istio's). */
export const P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** A WebCrypto key pair as PEM (PKCS#8 private key), the form node:tls takes. */
export async function generateP256(): Promise<{ keys: KeyPair; keyPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(P256, true, ['sign', 'verify'])) as KeyPair;
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { keys, keyPem: pemOf('PRIVATE KEY', pkcs8) };
}

/** Imports a PKCS#8 PEM P-256 private key with its public half (for a CA loaded from disk). */
export async function importP256(keyPem: string): Promise<KeyPair> {
  const priv = createPrivateKey(keyPem);
  const pkcs8 = priv.export({ format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(priv).export({ format: 'der', type: 'spki' });
  const privateKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, P256, true, ['sign']);
  const publicKey = await webcrypto.subtle.importKey('spki', spki, P256, true, ['verify']);
  return { privateKey, publicKey } as KeyPair;
}

export function pemOf(label: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/** Splits a PEM bundle into its blocks (each with its BEGIN/END lines). */
export function pemBlocks(pem: string): string[] {
  return pem.match(/-----BEGIN [A-Z ]+-----[\s\S]+?-----END [A-Z ]+-----\n?/g)?.map((b) => (b.endsWith('\n') ? b : `${b}\n`)) ?? [];
}
