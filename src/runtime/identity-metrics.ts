import { Counter, Gauge, type Registry } from 'prom-client';
import type { IssueEvent, WorkloadCertificates } from '../identity/workload-certificates';

/**
 * The workload certificates, in metrics: requests by result (issued, rotated, failed) and
 * each identity's expiry, so an alert can fire well before a certificate that the CA
 * cannot renew runs out.
 */
export function registerIdentityMetrics(registry: Registry, certificates: WorkloadCertificates): void {
  const issues = new Counter({
    name: 'nodemesh_certificate_requests_total',
    help: 'Workload certificate requests to the CA by result: issued (first), rotated (a renewal), failed.',
    labelNames: ['result'],
    registers: [registry],
  });
  certificates.on('issue', (kind: IssueEvent) => issues.inc({ result: kind }));
  const expiry = new Gauge({
    name: 'nodemesh_certificate_expiry_seconds',
    help: 'Seconds until each held workload certificate expires, by SPIFFE ID.',
    labelNames: ['spiffe_id'],
    registers: [registry],
    collect: () => {
      expiry.reset();
      for (const c of certificates.credentials()) expiry.set({ spiffe_id: c.spiffeId }, Math.round((c.notAfter.getTime() - Date.now()) / 1000));
    },
  });
  const roots: Gauge = new Gauge({
    name: 'nodemesh_trust_bundle_roots',
    help: 'Roots in the trust bundle this agent holds (2 during a root rollover).',
    registers: [registry],
    collect: (): void => roots.set((certificates.trustBundlePem.match(/BEGIN CERTIFICATE/g) ?? []).length),
  });
}
