import type { WorkloadCertificates } from '../identity/workload-certificates';
import { podKey, type PodInfo } from '../mesh/model';
import type { ProxyConfig } from '../proxy/proxy-config';

/**
 * A served pod's certificate, the same for the agent (every pod it captures) and the
 * sidecar (its one pod): asked for before the pod is served, since a pod whose identity
 * cannot be proved has nothing to present on its 15008; and shown by `nodemesh status`.
 */

/** Gets (or keeps) the pod's certificate; rejects when the CA cannot give one. No CA, or no identity: nothing to do. */
export async function ensurePodCertificate(config: ProxyConfig, identity: WorkloadCertificates | undefined, pod: PodInfo): Promise<void> {
  const principal = config.workload(pod).principal;
  if (!identity || !principal) return;
  await identity.ensure(principal, podKey(pod), { namespace: pod.namespace, name: pod.name, serviceAccount: pod.serviceAccount || 'default' });
}

/** The pod record's identity fields: its SPIFFE ID and certificate expiry, when it holds one. */
export function podCertificateFields(config: ProxyConfig, identity: WorkloadCertificates | undefined, pod: PodInfo): { identity?: string; certificateExpiry?: string } {
  const principal = config.workload(pod).principal;
  const credential = principal ? identity?.current(principal) : undefined;
  return credential ? { identity: credential.spiffeId, certificateExpiry: credential.notAfter.toISOString() } : {};
}
