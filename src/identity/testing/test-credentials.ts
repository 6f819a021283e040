import { CertificateAuthority, generateRoot } from '../certificate-authority';
import { certificateFacts } from '../certificate-facts';
import { workloadSecureContext } from '../mtls-options';
import type { WorkloadCredential } from '../workload-certificates';
import { workloadKeyAndCsr } from '../workload-csr';

let generation = 1_000_000;

/**
 * A throwaway CA for tests that need workload certificates without a CA process: issues
 * real X.509-SVIDs (the CA's own code) for the SPIFFE IDs asked for.
 */
export async function testCa(trustDomain = 'cluster.local'): Promise<{ bundlePem: string; credential(spiffeId: string, lifetimeMs?: number): Promise<WorkloadCredential> }> {
  const root = await generateRoot(trustDomain);
  const ca = await CertificateAuthority.load(root);
  return {
    bundlePem: root.certPem,
    async credential(spiffeId, lifetimeMs = 3600_000) {
      const { keyPem, csrPem } = await workloadKeyAndCsr(spiffeId);
      const issued = await ca.issue(csrPem, spiffeId, lifetimeMs);
      const facts = certificateFacts(issued.chainPem);
      return {
        spiffeId,
        chainPem: issued.chainPem,
        keyPem,
        notBefore: facts.notBefore,
        notAfter: facts.notAfter,
        serialNumber: facts.serialNumber,
        trustBundlePem: root.certPem,
        context: workloadSecureContext(issued.chainPem, keyPem, root.certPem),
        generation: ++generation,
      };
    },
  };
}
