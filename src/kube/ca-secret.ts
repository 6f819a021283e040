import { CoreV1Api, type KubeConfig, type V1ConfigMap, type V1Secret } from '@kubernetes/client-node';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeError, NodemeshError } from '../errors';
import { generateCaFiles, readCaFiles } from '../identity/ca-state';
import type { Logger } from '../log';
import { kubeRequest } from './api-deadline';

/**
 * The cluster CA's key in a Secret and its roots in a ConfigMap (as istiod keeps
 * istio-ca-secret and publishes istio-ca-root-cert):
 * - `syncCaSecret`: the chart's "generated" key. The first CA to start generates a root and
 *   creates the Secret (kubernetes.io/tls: tls.crt, tls.key, ca.crt); every later start, and
 *   a replica that lost the race to create it, uses the Secret's. The files are written
 *   into the CA's state directory, which it serves from.
 * - `publishTrustBundle`: the ConfigMap the agents mount as their first trust bundle
 *   (`ca.crt`), rewritten whenever the CA's roots change.
 */

export interface ObjectRef {
  namespace: string;
  name: string;
}

/** Reads "NAMESPACE/NAME" for a flag. */
export function parseObjectRef(text: string, flag: string): ObjectRef {
  const [namespace, name, extra] = text.split('/');
  if (!namespace || !name || extra !== undefined) throw new NodemeshError('ERR_NM_USAGE', `${flag} takes NAMESPACE/NAME, got '${text}'`);
  return { namespace, name };
}

const FILES = ['tls.crt', 'tls.key', 'ca.crt'] as const;
const isNotFound = (err: unknown) => (err as { code?: number }).code === 404;
const isConflict = (err: unknown) => (err as { code?: number }).code === 409;

function writeFromSecret(secret: V1Secret, ref: ObjectRef, stateDir: string): void {
  const data = secret.data ?? {};
  const missing = FILES.filter((f) => f !== 'ca.crt' && !data[f]);
  if (missing.length > 0) {
    throw new NodemeshError('ERR_NM_CA_KEY', `Secret ${ref.namespace}/${ref.name} has no ${missing.join(' or ')}`, { hint: 'it must be a kubernetes.io/tls Secret holding the CA\'s certificate and key; delete it to let the CA generate one' });
  }
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  for (const f of FILES) {
    const value = data[f] ?? data['tls.crt']!;
    writeFileSync(join(stateDir, f), Buffer.from(value, 'base64'), { mode: f === 'tls.key' ? 0o600 : 0o644 });
  }
}

export async function syncCaSecret(kubeConfig: KubeConfig, ref: ObjectRef, stateDir: string, trustDomain: string, log: Logger): Promise<'loaded' | 'created'> {
  const api = kubeConfig.makeApiClient(CoreV1Api);
  const read = () => kubeRequest(api.readNamespacedSecret({ namespace: ref.namespace, name: ref.name }), `get Secret ${ref.namespace}/${ref.name}`, 15_000);
  try {
    writeFromSecret(await read(), ref, stateDir);
    return 'loaded';
  } catch (err) {
    if (!isNotFound(err)) throw caSecretError(err, ref, 'read');
  }
  const files = readCaFiles(stateDir) ?? (await generateCaFiles(stateDir, trustDomain));
  const body: V1Secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'kubernetes.io/tls',
    metadata: { name: ref.name, namespace: ref.namespace, labels: { 'app.kubernetes.io/part-of': 'nodemesh', 'app.kubernetes.io/component': 'identity' } },
    data: {
      'tls.crt': Buffer.from(files.signer.certPem).toString('base64'),
      'tls.key': Buffer.from(files.signer.keyPem).toString('base64'),
      'ca.crt': Buffer.from(files.trustBundlePem).toString('base64'),
    },
  };
  try {
    await kubeRequest(api.createNamespacedSecret({ namespace: ref.namespace, body }), `create Secret ${ref.namespace}/${ref.name}`, 15_000);
    log.info({ secret: `${ref.namespace}/${ref.name}` }, 'generated the CA root and stored it in its Secret');
    return 'created';
  } catch (err) {
    if (!isConflict(err)) throw caSecretError(err, ref, 'create');
  }
  // Another replica created it first: its root is the mesh's.
  writeFromSecret(await read(), ref, stateDir);
  return 'loaded';
}

function caSecretError(err: unknown, ref: ObjectRef, verb: string): NodemeshError {
  if (err instanceof NodemeshError && err.code === 'ERR_NM_CA_KEY') return err;
  return new NodemeshError('ERR_NM_CA_KEY', `cannot ${verb} the CA Secret ${ref.namespace}/${ref.name}: ${describeError(err)}`, {
    hint: 'the CA needs get and create on secrets in its namespace (the chart\'s Role nodemesh-identity)',
    cause: err,
  });
}

/** Creates or replaces the ConfigMap with the trust bundle (`ca.crt`). */
export async function publishTrustBundle(kubeConfig: KubeConfig, ref: ObjectRef, bundlePem: string): Promise<void> {
  const api = kubeConfig.makeApiClient(CoreV1Api);
  const body: V1ConfigMap = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: ref.name, namespace: ref.namespace, labels: { 'app.kubernetes.io/part-of': 'nodemesh', 'app.kubernetes.io/component': 'identity' } },
    data: { 'ca.crt': bundlePem },
  };
  const what = `ConfigMap ${ref.namespace}/${ref.name}`;
  try {
    const current = await kubeRequest(api.readNamespacedConfigMap({ namespace: ref.namespace, name: ref.name }), `get ${what}`, 15_000);
    if (current.data?.['ca.crt'] === bundlePem) return;
    body.metadata!.resourceVersion = current.metadata?.resourceVersion;
    await kubeRequest(api.replaceNamespacedConfigMap({ namespace: ref.namespace, name: ref.name, body }), `replace ${what}`, 15_000);
  } catch (err) {
    if (!isNotFound(err)) throw bundleError(err, what);
    try {
      await kubeRequest(api.createNamespacedConfigMap({ namespace: ref.namespace, body }), `create ${what}`, 15_000);
    } catch (createErr) {
      throw bundleError(createErr, what);
    }
  }
}

function bundleError(err: unknown, what: string): NodemeshError {
  if (err instanceof NodemeshError) return err;
  return new NodemeshError('ERR_NM_CA_BUNDLE', `cannot publish the trust bundle to ${what}: ${describeError(err)}`, {
    hint: 'the CA needs get, create and update on configmaps in its namespace (the chart\'s Role nodemesh-identity)',
    cause: err,
  });
}
