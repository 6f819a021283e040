import { readFileSync } from 'node:fs';
import { NodemeshError } from '../errors';
import type { Logger } from '../log';
import { CaClient } from './ca-client';
import { DEFAULT_CA_SERVER_NAME } from './ca-server';
import { WorkloadCertificates } from './workload-certificates';

export interface AgentIdentityOptions {
  /** `https://host:port` or `unix:/path`. */
  caAddress: string;
  /** The roots the CA's serving certificate chains to (the trust bundle, first copy). */
  caBundleFile: string;
  /** The agent's token: a projected service-account token (audience nodemesh-ca), or the local CA's. */
  caTokenFile: string;
  caServerName?: string;
  /** How often the trust bundle is fetched again (default 60 s). */
  bundleRefreshMs?: number;
}

/**
 * The agent's certificates, from its flags. The token is read from its file at every
 * request: kubelet rotates projected tokens in place.
 */
export function agentIdentity(options: AgentIdentityOptions, log: Logger): WorkloadCertificates {
  const bundle = readRequired(options.caBundleFile, '--ca-bundle-file');
  readRequired(options.caTokenFile, '--ca-token-file');
  const client = new CaClient(
    { address: options.caAddress, trustBundlePem: bundle, serverName: options.caServerName ?? DEFAULT_CA_SERVER_NAME },
    () => readFileSync(options.caTokenFile, 'utf8').trim(),
  );
  const certificates = new WorkloadCertificates(client, bundle, log);
  certificates.refreshBundleEvery(options.bundleRefreshMs ?? 60_000);
  return certificates;
}

function readRequired(path: string, flag: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new NodemeshError('ERR_NM_USAGE', `${flag} ${path} cannot be read: ${(err as Error).message}`, { hint: 'give the file the chart (or `sim up`) provides', cause: err });
  }
}
