import { agentIdentity } from '../identity/agent-identity';
import { checkTrustDomain } from '../identity/spiffe-id';
import type { WorkloadCertificates } from '../identity/workload-certificates';
import { NodemeshError } from '../errors';
import type { Logger } from '../log';
import { DEFAULT_TRUST_DOMAIN } from '../mesh/workload-identity';
import { MESH_ROOT_NAMESPACE } from '../policy/server/peer-authentication';
import { DEFAULT_CLUSTER_ID } from '../telemetry/istio-metrics';

/**
 * The flags that give a proxy its workload identity (the CA, its token, the trust domain
 * and the mesh's root namespace), shared by `nodemesh agent` and `nodemesh sidecar`: the
 * agent's token gets certificates for the pods of its node, a sidecar's (bound to its
 * pod) for its own pod only; the CA tells them apart.
 */

export const IDENTITY_FLAGS = {
  'ca-address': { type: 'string' },
  'ca-bundle-file': { type: 'string' },
  'ca-token-file': { type: 'string' },
  'ca-server-name': { type: 'string' },
  'ca-bundle-refresh-ms': { type: 'string' },
  'trust-domain': { type: 'string', default: DEFAULT_TRUST_DOMAIN },
  'mesh-root-namespace': { type: 'string', default: MESH_ROOT_NAMESPACE },
  'cluster-id': { type: 'string', default: DEFAULT_CLUSTER_ID },
} as const;

export const IDENTITY_HELP = `  --ca-address ADDR        the CA (nodemesh identity): https://HOST:PORT or unix:PATH; pods
                           are served once their certificate is issued, and the other pods
                           of the mesh are reached through the mTLS tunnel. Without it: no tunnel
  --ca-bundle-file PATH    the trust bundle (PEM roots) to trust the CA with
  --ca-token-file PATH     the token for the CA (audience nodemesh-ca): the agent's, or the
                           sidecar's pod-bound service-account token
  --ca-server-name NAME    the DNS name in the CA's certificate (default nodemesh-identity)
  --ca-bundle-refresh-ms N how often the trust bundle is fetched again (default 60000)
  --trust-domain TD        the trust domain of workload identities (default cluster.local);
                           the CA's --trust-domain must be the same
  --mesh-root-namespace NS where a PeerAuthentication or AuthorizationPolicy without a
                           selector applies to the whole mesh (Istio's root namespace;
                           default nodemesh-system)
  --cluster-id ID          the cluster's name in telemetry (source_cluster,
                           destination_cluster; Istio's CLUSTER_ID, default Kubernetes)`;

export interface IdentityFlagValues {
  'ca-address'?: string;
  'ca-bundle-file'?: string;
  'ca-token-file'?: string;
  'ca-server-name'?: string;
  'ca-bundle-refresh-ms'?: string;
  'trust-domain'?: string;
  'mesh-root-namespace'?: string;
  'cluster-id'?: string;
}

export interface IdentityFromFlags {
  identity: WorkloadCertificates | undefined;
  trustDomain: string;
  meshRootNamespace: string;
  clusterId: string;
}

/** The certificates (when --ca-address is given) and the names, checked. */
export function identityFromFlags(values: IdentityFlagValues, log: Logger, withoutCa: string): IdentityFromFlags {
  const trustDomain = checkTrustDomain(values['trust-domain'] ?? DEFAULT_TRUST_DOMAIN);
  const meshRootNamespace = checkNamespaceName(values['mesh-root-namespace'] ?? MESH_ROOT_NAMESPACE);
  const clusterId = checkClusterId(values['cluster-id'] ?? DEFAULT_CLUSTER_ID);
  if (!values['ca-address']) {
    log.warn(withoutCa);
    return { identity: undefined, trustDomain, meshRootNamespace, clusterId };
  }
  if (!values['ca-bundle-file'] || !values['ca-token-file']) {
    throw new NodemeshError('ERR_NM_USAGE', '--ca-address needs --ca-bundle-file and --ca-token-file', { hint: 'the chart and `sim up` pass all three' });
  }
  const identity = agentIdentity({
    caAddress: values['ca-address'],
    caBundleFile: values['ca-bundle-file'],
    caTokenFile: values['ca-token-file'],
    ...(values['ca-server-name'] ? { caServerName: values['ca-server-name'] } : {}),
    ...(values['ca-bundle-refresh-ms'] ? { bundleRefreshMs: parseRefreshMs(values['ca-bundle-refresh-ms']) } : {}),
  }, log);
  return { identity, trustDomain, meshRootNamespace, clusterId };
}

/** `--cluster-id`: a label value Prometheus and Istio's dashboards read as it is (no spaces or quotes). */
function checkClusterId(text: string): string {
  if (!/^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/.test(text) || text.length > 253) {
    throw new NodemeshError('ERR_NM_USAGE', `--cluster-id must be letters, digits, '-', '_' and '.', starting and ending with a letter or digit, at most 253, got '${text}'`, { hint: "Istio's default is Kubernetes; use the name your Istio control plane gives this cluster" });
  }
  return text;
}

/** `--ca-bundle-refresh-ms`: at least 100 ms (the CA is asked that often). */
function parseRefreshMs(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 100) throw new NodemeshError('ERR_NM_USAGE', `--ca-bundle-refresh-ms must be a whole number of milliseconds, at least 100, got '${text}'`);
  return n;
}

/** `--mesh-root-namespace`: a namespace name (DNS-1123 label). */
function checkNamespaceName(text: string): string {
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(text) || text.length > 63) {
    throw new NodemeshError('ERR_NM_USAGE', `--mesh-root-namespace must be a namespace name (lower-case letters, digits and '-', at most 63), got '${text}'`);
  }
  return text;
}
