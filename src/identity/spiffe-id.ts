import { NodemeshError } from '../errors';

/** A workload identity as SPIFFE spells a Kubernetes service account: spiffe://<td>/ns/<ns>/sa/<sa> (made by mesh/'s spiffePrincipal). */
export interface SpiffeId {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

const DNS_LABELS = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;

/** The SPIFFE ID in a URI, or undefined when it is not one of the Kubernetes form. */
export function parseSpiffeId(uri: string): SpiffeId | undefined {
  const m = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(uri);
  if (!m) return undefined;
  const [, trustDomain, namespace, serviceAccount] = m as unknown as [string, string, string, string];
  if (!DNS_LABELS.test(trustDomain) || !DNS_LABELS.test(namespace) || !DNS_LABELS.test(serviceAccount)) return undefined;
  return { trustDomain, namespace, serviceAccount };
}

/** A trust domain as given on a command line or in the chart: a DNS name, lower case. */
export function checkTrustDomain(trustDomain: string): string {
  if (!DNS_LABELS.test(trustDomain) || trustDomain.length > 255) {
    throw new NodemeshError('ERR_NM_TRUST_DOMAIN', `trust domain "${trustDomain}" is not a lower-case DNS name`, { hint: 'use a name such as cluster.local' });
  }
  return trustDomain;
}
