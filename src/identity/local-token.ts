import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { NodemeshError } from '../errors';
import { CA_AUDIENCE, type AgentAuthenticator, type AuthenticatedAgent } from './agent-authentication';

/**
 * The local CA's agent tokens (simulator, `--source` mode): JWTs (HS256) with the node in
 * a claim, minted by `nodemesh identity token` with the key in the CA's state directory,
 * checked like the API server checks a projected token — signature, expiry, audience.
 * Standing in for Kubernetes' bound service-account tokens where there is no API server.
 */
export function mintLocalToken(key: Buffer, claims: { node: string; audience?: string; lifetimeMs?: number; pod?: { namespace: string; name: string; serviceAccount: string } }, now = Date.now()): string {
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = b64url(JSON.stringify({
    iss: 'nodemesh-identity',
    // A pod-bound token (a sidecar's), like Kubernetes' projected token of the pod's service account.
    sub: claims.pod ? `system:serviceaccount:${claims.pod.namespace}:${claims.pod.serviceAccount}` : `node:${claims.node}`,
    aud: claims.audience ?? CA_AUDIENCE,
    node: claims.node,
    ...(claims.pod && { pod: claims.pod }),
    iat: Math.floor(now / 1000),
    exp: Math.floor((now + (claims.lifetimeMs ?? 365 * 24 * 3600_000)) / 1000),
  }));
  return `${header}.${payload}.${sign(key, `${header}.${payload}`)}`;
}

export function newTokenKey(): Buffer {
  return randomBytes(32);
}

export class LocalTokenAuthenticator implements AgentAuthenticator {
  constructor(private readonly key: () => Buffer) {}

  authenticate(token: string): Promise<AuthenticatedAgent> {
    const parts = token.split('.');
    if (parts.length !== 3) return Promise.reject(unauthenticated('the token is not a JWT'));
    const [header, payload, signature] = parts as [string, string, string];
    const expected = Buffer.from(sign(this.key(), `${header}.${payload}`));
    const given = Buffer.from(signature);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return Promise.reject(unauthenticated('the token\'s signature does not verify'));
    let claims: { aud?: unknown; exp?: unknown; node?: unknown; sub?: unknown; pod?: unknown };
    try {
      claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as typeof claims;
    } catch {
      return Promise.reject(unauthenticated('the token\'s claims are not JSON'));
    }
    const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!audiences.includes(CA_AUDIENCE)) return Promise.reject(unauthenticated(`the token is for audience ${JSON.stringify(claims.aud)}, not ${CA_AUDIENCE}`));
    if (typeof claims.exp !== 'number' || claims.exp * 1000 < Date.now()) return Promise.reject(unauthenticated('the token has expired'));
    if (typeof claims.node !== 'string' || !claims.node) return Promise.reject(unauthenticated('the token names no node'));
    const pod = claims.pod as { namespace?: unknown; name?: unknown; serviceAccount?: unknown } | undefined;
    if (pod !== undefined) {
      if (typeof pod.namespace !== 'string' || typeof pod.name !== 'string' || typeof pod.serviceAccount !== 'string') return Promise.reject(unauthenticated('the token\'s pod claim is malformed'));
      return Promise.resolve({ node: claims.node, subject: String(claims.sub), pod: { namespace: pod.namespace, name: pod.name, serviceAccount: pod.serviceAccount } });
    }
    return Promise.resolve({ node: claims.node, subject: String(claims.sub) });
  }
}

function sign(key: Buffer, data: string): string {
  return createHmac('sha256', key).update(data).digest('base64url');
}

function b64url(s: string): string {
  return Buffer.from(s).toString('base64url');
}

function unauthenticated(reason: string): NodemeshError {
  return new NodemeshError('ERR_NM_CA_UNAUTHENTICATED', `agent not authenticated: ${reason}`, { hint: 'give the agent a token for audience nodemesh-ca (--ca-token-file)' });
}
