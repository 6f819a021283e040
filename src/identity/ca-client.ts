import { request } from 'node:https';
import { NodemeshError } from '../errors';

/** Where the CA listens: `https://host:port` or `unix:/path/to/socket` (TLS either way). */
export interface CaEndpoint {
  readonly address: string;
  /** The roots that signed the CA's serving certificate (the trust bundle). */
  trustBundlePem: string;
  /** The DNS name in the CA's serving certificate. */
  serverName: string;
}

/** The CA's answer to a signing request (the wire format of POST /v1/certificates). */
export interface SignResponse {
  chainPem: string;
  trustBundlePem: string;
  notAfter: string;
}

/** What the agent asks for: a certificate for the service account of a pod of its node. */
export interface SignRequest {
  csrPem: string;
  pod: { namespace: string; name: string; serviceAccount: string };
}

const REQUEST_TIMEOUT_MS = 10_000;

/**
 * The agent's side of the CA protocol: JSON over HTTPS, the agent's token as a bearer
 * token. Errors keep the CA's code (`ERR_NM_CA_DENIED` for a refusal, with its reason) so
 * the pod's failure says why.
 */
export class CaClient {
  constructor(private readonly endpoint: CaEndpoint, private readonly token: () => string) {}

  /** The roots to trust the CA with from now on (a root rotation moves its serving certificate too). */
  setTrustBundle(trustBundlePem: string): void {
    this.endpoint.trustBundlePem = trustBundlePem;
  }

  sign(body: SignRequest): Promise<SignResponse> {
    return this.call('POST', '/v1/certificates', body) as Promise<SignResponse>;
  }

  trustBundle(): Promise<{ trustBundlePem: string }> {
    return this.call('GET', '/v1/trust-bundle') as Promise<{ trustBundlePem: string }>;
  }

  private call(method: string, path: string, body?: unknown): Promise<unknown> {
    const { address, trustBundlePem, serverName } = this.endpoint;
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const target = address.startsWith('unix:') ? { socketPath: address.slice(5) } : (() => {
      const u = new URL(address);
      return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 443) };
    })();
    return new Promise((resolve, reject) => {
      const req = request({
        ...target,
        method,
        path,
        ca: trustBundlePem,
        servername: serverName,
        minVersion: 'TLSv1.3',
        headers: { authorization: `Bearer ${this.token()}`, ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}) },
        timeout: REQUEST_TIMEOUT_MS,
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let parsed: { code?: string; message?: string } & Record<string, unknown>;
          try {
            parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof parsed;
          } catch {
            reject(new NodemeshError('ERR_NM_CA_UNAVAILABLE', `the CA at ${address} answered ${res.statusCode} with a body that is not JSON`, { hint: 'check that the address is nodemesh identity\'s' }));
            return;
          }
          if (res.statusCode === 200) resolve(parsed);
          else reject(new NodemeshError(parsed.code ?? 'ERR_NM_CA_DENIED', `the CA refused: ${parsed.message ?? res.statusCode}`, { details: { status: res.statusCode } }));
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new NodemeshError('ERR_NM_CA_UNAVAILABLE', `the CA at ${address} did not answer within ${REQUEST_TIMEOUT_MS} ms`, { hint: 'check that nodemesh identity runs' })));
      req.on('error', (err: Error & { code?: string }) => {
        if (err instanceof NodemeshError) reject(err);
        else reject(new NodemeshError('ERR_NM_CA_UNAVAILABLE', `cannot reach the CA at ${address}: ${err.message}`, { hint: 'check that nodemesh identity runs and that its address and trust bundle are right', cause: err }));
      });
      req.end(payload);
    });
  }
}
