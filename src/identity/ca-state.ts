import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NodemeshError } from '../errors';
import { generateRoot, type KeyAndCert } from './certificate-authority';
import { pemBlocks } from './x509-library';
import { newTokenKey } from './local-token';

/**
 * The CA's key material on disk, in the layout of a kubernetes.io/tls Secret (what a
 * user-provided Secret or cert-manager's Certificate gives, mounted as files):
 * - tls.crt, tls.key: the signing certificate and key;
 * - ca.crt: every root trusted now (the trust bundle; during a rollover, old and new);
 * - next.crt, next.key: a staged root, trusted but not yet signing (rotation step 1);
 * - token.key: the key of the local CA's agent tokens (simulator and --source mode only).
 */
export interface CaFiles {
  signer: KeyAndCert;
  trustBundlePem: string;
}

export function readCaFiles(dir: string): CaFiles | undefined {
  const crt = join(dir, 'tls.crt');
  const key = join(dir, 'tls.key');
  if (!existsSync(crt) || !existsSync(key)) return undefined;
  const bundle = join(dir, 'ca.crt');
  return {
    signer: { certPem: readFileSync(crt, 'utf8'), keyPem: readFileSync(key, 'utf8') },
    trustBundlePem: existsSync(bundle) ? readFileSync(bundle, 'utf8') : '',
  };
}

/** Generates a root into an empty state directory (the default: no key given). */
export async function generateCaFiles(dir: string, trustDomain: string): Promise<CaFiles> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const root = await generateRoot(trustDomain);
  writeSecret(join(dir, 'tls.key'), root.keyPem);
  writeFileSync(join(dir, 'tls.crt'), root.certPem);
  writeFileSync(join(dir, 'ca.crt'), root.certPem);
  return { signer: root, trustBundlePem: root.certPem };
}

/**
 * Root rotation, in three steps so that nothing is dropped: every peer must trust a root
 * before any certificate signed by it is shown to it.
 * 1. `stage`: a new root joins the bundle (trusted by every agent once it refreshes), the
 *    old one still signs;
 * 2. `activate`: the new root signs; certificates of the old one stay valid (still trusted)
 *    and are replaced at their renewal;
 * 3. `retire`: once every certificate of the old root has been renewed (one lifetime), the
 *    bundle is the new root alone.
 */
export async function rotateRoot(dir: string, step: 'stage' | 'activate' | 'retire', trustDomain: string): Promise<string> {
  const files = readCaFiles(dir);
  if (!files) throw new NodemeshError('ERR_NM_CA_KEY', `no CA in ${dir} (tls.crt, tls.key)`, { hint: 'start nodemesh identity once to generate one, or give the state directory of the CA' });
  const next = { crt: join(dir, 'next.crt'), key: join(dir, 'next.key') };
  switch (step) {
    case 'stage': {
      if (existsSync(next.crt)) throw new NodemeshError('ERR_NM_CA_ROTATION', 'a root is already staged', { hint: 'run `nodemesh identity rotate-root --activate` next' });
      const root = await generateRoot(trustDomain);
      writeSecret(next.key, root.keyPem);
      writeFileSync(next.crt, root.certPem);
      writeFileSync(join(dir, 'ca.crt'), bundleOf([files.trustBundlePem, root.certPem]));
      return 'staged a new root: it is trusted now and signs after --activate';
    }
    case 'activate': {
      if (!existsSync(next.crt)) throw new NodemeshError('ERR_NM_CA_ROTATION', 'no staged root to activate', { hint: 'run `nodemesh identity rotate-root` (stage) first, and wait until agents trust it' });
      renameSync(next.key, join(dir, 'tls.key'));
      renameSync(next.crt, join(dir, 'tls.crt'));
      return 'the new root signs now; the old one stays trusted until --retire';
    }
    case 'retire': {
      if (existsSync(next.crt)) throw new NodemeshError('ERR_NM_CA_ROTATION', 'a staged root is not active yet', { hint: 'run --activate first' });
      writeFileSync(join(dir, 'ca.crt'), files.signer.certPem);
      return 'the bundle holds the signing root only';
    }
  }
}

/** The local CA's token key, made on first use. */
export function tokenKey(dir: string): Buffer {
  const path = join(dir, 'token.key');
  if (!existsSync(path)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeSecret(path, newTokenKey().toString('base64'));
  }
  return Buffer.from(readFileSync(path, 'utf8').trim(), 'base64');
}

function bundleOf(pems: string[]): string {
  return [...new Set(pems.flatMap(pemBlocks))].join('');
}

function writeSecret(path: string, content: string): void {
  writeFileSync(path, content, { mode: 0o600 });
}
