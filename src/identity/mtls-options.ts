import { createSecureContext, type PeerCertificate, type SecureContext, type TLSSocket } from 'node:tls';
import { spiffeIdOf } from './certificate-facts';

/** ALPN of the tunnel, as HBONE's: HTTP/2 inside TLS. */
export const TUNNEL_ALPN = ['h2'];

/**
 * One workload's TLS material: its chain and key with the trust bundle, as one secure
 * context that serves both as the server (its pod's 15008) and as the client (its
 * outbound tunnel sessions). TLS 1.3 only: the handshake encrypts the certificates, and
 * there is nothing older to interoperate with.
 */
export function workloadSecureContext(chainPem: string, keyPem: string, trustBundlePem: string): SecureContext {
  return createSecureContext({ cert: chainPem, key: keyPem, ca: trustBundlePem, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' });
}

/**
 * Options for the client side: present the source's certificate; accept the server only if
 * its certificate chains to the bundle and carries exactly the SPIFFE ID expected at the
 * destination (a node proxy answering with another workload's identity is refused).
 */
export function tunnelClientOptions(context: SecureContext, expectedServerId: string) {
  return {
    secureContext: context,
    ALPNProtocols: TUNNEL_ALPN,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.3' as const,
    checkServerIdentity: (_host: string, cert: PeerCertificate): Error | undefined => {
      const got = spiffeIdOf(cert.subjectaltname);
      if (got === expectedServerId) return undefined;
      return Object.assign(new Error(`the tunnel peer presented ${got ?? 'no SPIFFE ID'}, expected ${expectedServerId}`), { code: 'ERR_NM_PEER_IDENTITY' });
    },
  };
}

/** The authenticated SPIFFE ID of a TLS peer, or undefined when it presented none that verified. */
export function peerSpiffeId(socket: TLSSocket): string | undefined {
  if (!socket.authorized) return undefined;
  return spiffeIdOf(socket.getPeerCertificate().subjectaltname);
}
