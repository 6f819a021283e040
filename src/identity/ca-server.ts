import { watchFile, unwatchFile } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { describeError, NodemeshError } from '../errors';
import type { Logger } from '../log';
import type { AgentAuthenticator, PodRegistry } from './agent-authentication';
import type { SignRequest } from './ca-client';
import { CertificateAuthority, DEFAULT_WORKLOAD_LIFETIME_MS, MIN_WORKLOAD_LIFETIME_MS } from './certificate-authority';
import { readCaFiles } from './ca-state';
import { spiffePrincipal } from '../mesh/workload-identity';

export interface CaServerOptions {
  stateDir: string;
  trustDomain: string;
  workloadLifetimeMs?: number;
  authenticator: AgentAuthenticator;
  pods: PodRegistry;
  /** The DNS names of the CA's serving certificate (agents check the first). */
  servingNames: string[];
  log: Logger;
  /** Counts each decision (issued, denied, error). */
  onDecision?(result: 'issued' | 'denied' | 'error'): void;
  /** The trust bundle at start and after every change of it (cluster mode publishes it in a ConfigMap). */
  onTrustBundle?(pem: string): void;
}

/** The server name agents check when no other is configured. */
export const DEFAULT_CA_SERVER_NAME = 'nodemesh-identity';
const MAX_BODY = 64 * 1024;

/**
 * `nodemesh identity`: the CA service. One endpoint signs, POST /v1/certificates, with
 * the rules that make a stolen agent token worth one node and nothing more (as istiod's
 * node authorizer for ztunnel):
 * 1. the bearer token authenticates an agent and its node (for this CA's audience only);
 * 2. the pod named in the request exists, is not finished, and runs on *that* node;
 * 3. the certificate is for the pod's service account as the API server has it (the
 *    request's service account must agree), in this CA's trust domain.
 * GET /v1/trust-bundle serves the roots (agents refresh it; root rotation needs it).
 * The key material reloads when its files change (a rotation, a renewed cert-manager
 * Secret).
 */
export class CaServer {
  private ca!: CertificateAuthority;
  private server: Server | undefined;
  private readonly watched: string[] = [];

  constructor(private readonly options: CaServerOptions) {}

  get trustBundlePem(): string {
    return this.ca.trustBundlePem;
  }

  async listen(address: { path: string } | { host: string; port: number }): Promise<void> {
    await this.reload();
    const serving = await this.serving();
    this.server = createServer({ ...serving, minVersion: 'TLSv1.3', requestTimeout: 15_000, headersTimeout: 10_000 }, (req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      if ('path' in address) this.server!.listen(address.path, resolve);
      else this.server!.listen(address.port, address.host, resolve);
    });
    for (const f of ['tls.crt', 'ca.crt']) {
      const path = join(this.options.stateDir, f);
      watchFile(path, { interval: 500 }, () => void this.reload().catch((err: unknown) => this.options.log.error({ err: describeError(err) }, 'CA key material did not reload; the previous stays in use')));
      this.watched.push(path);
    }
  }

  async reload(): Promise<void> {
    const files = readCaFiles(this.options.stateDir);
    if (!files) throw new NodemeshError('ERR_NM_CA_KEY', `no CA key material in ${this.options.stateDir} (tls.crt, tls.key)`, { hint: 'let nodemesh identity generate it (--generate-root) or mount the CA Secret there' });
    const ca = await CertificateAuthority.load(files.signer, files.trustBundlePem);
    const changed = this.ca !== undefined;
    const bundleChanged = this.ca?.trustBundlePem !== ca.trustBundlePem;
    this.ca = ca;
    if (bundleChanged) this.options.onTrustBundle?.(ca.trustBundlePem);
    // The serving certificate follows the signer: once an old root is retired, agents that
    // trust the new one alone must still reach the CA.
    if (this.server) this.server.setSecureContext({ ...(await this.serving()), minVersion: 'TLSv1.3' });
    if (changed) this.options.log.info({ roots: (ca.trustBundlePem.match(/BEGIN CERTIFICATE/g) ?? []).length }, 'CA key material reloaded');
  }

  private async serving(): Promise<{ cert: string; key: string }> {
    const s = await this.ca.issueServing({ dns: this.options.servingNames, ips: ['127.0.0.1', '::1'] });
    return { cert: s.chainPem, key: s.keyPem };
  }

  async close(): Promise<void> {
    for (const p of this.watched) unwatchFile(p);
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      if (req.method === 'GET' && req.url === '/v1/trust-bundle') {
        reply(res, 200, { trustBundlePem: this.ca.trustBundlePem });
        return;
      }
      if (req.method !== 'POST' || req.url !== '/v1/certificates') {
        reply(res, 404, { code: 'ERR_NM_CA_NOT_FOUND', message: `no ${req.method} ${req.url} here; POST /v1/certificates or GET /v1/trust-bundle` });
        return;
      }
      const issued = await this.sign(req);
      this.options.onDecision?.('issued');
      reply(res, 200, issued);
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'ERR_NM_CA_INTERNAL';
      const status = code === 'ERR_NM_CA_UNAUTHENTICATED' ? 401 : code === 'ERR_NM_CA_DENIED' ? 403 : code === 'ERR_NM_CSR_INVALID' || code === 'ERR_NM_CA_BAD_REQUEST' ? 400 : 500;
      this.options.onDecision?.(status === 500 ? 'error' : 'denied');
      this.options.log.warn({ code, status, err: describeError(err), peer: req.socket.remoteAddress }, 'certificate request refused');
      reply(res, status, { code, message: describeError(err) });
    }
  }

  private async sign(req: IncomingMessage): Promise<{ chainPem: string; trustBundlePem: string; notAfter: string }> {
    const auth = req.headers.authorization ?? '';
    if (!auth.startsWith('Bearer ')) throw new NodemeshError('ERR_NM_CA_UNAUTHENTICATED', 'no bearer token', { hint: 'the agent sends its token as Authorization: Bearer' });
    const agent = await this.options.authenticator.authenticate(auth.slice(7).trim());
    const body = await readJson(req);
    const { namespace, name, serviceAccount } = body.pod ?? {};
    if (typeof body.csrPem !== 'string' || typeof namespace !== 'string' || typeof name !== 'string' || typeof serviceAccount !== 'string') {
      throw new NodemeshError('ERR_NM_CA_BAD_REQUEST', 'the request needs csrPem and pod {namespace, name, serviceAccount}');
    }
    const pod = await this.options.pods.get(namespace, name);
    const who = `${namespace}/${name}`;
    if (!pod) throw denied(`pod ${who} does not exist`);
    if (pod.nodeName !== agent.node) throw denied(`pod ${who} runs on ${pod.nodeName ? `node ${pod.nodeName}` : 'no node'}, not on the agent's node ${agent.node}`);
    if (agent.pod && (agent.pod.namespace !== namespace || agent.pod.name !== name)) {
      throw denied(`the token is bound to pod ${agent.pod.namespace}/${agent.pod.name}: a workload's token gets its own pod's certificate, not ${who}'s`);
    }
    if (agent.pod && agent.pod.serviceAccount !== pod.serviceAccount) throw denied(`the token is for service account ${agent.pod.serviceAccount}, but pod ${who} runs as ${pod.serviceAccount}`);
    if (pod.terminated) throw denied(`pod ${who} has finished`);
    if (pod.serviceAccount !== serviceAccount) throw denied(`pod ${who} runs as service account ${pod.serviceAccount}, not ${serviceAccount}`);
    const spiffeId = spiffePrincipal(namespace, pod.serviceAccount, this.options.trustDomain);
    const lifetime = Math.max(MIN_WORKLOAD_LIFETIME_MS, this.options.workloadLifetimeMs ?? DEFAULT_WORKLOAD_LIFETIME_MS);
    const issued = await this.ca.issue(body.csrPem, spiffeId, lifetime);
    this.options.log.info({ spiffeId, pod: who, node: agent.node, agent: agent.subject, ...(agent.pod && { boundTo: 'pod' }), notAfter: issued.notAfter.toISOString() }, 'certificate issued');
    return { chainPem: issued.chainPem, trustBundlePem: issued.trustBundlePem, notAfter: issued.notAfter.toISOString() };
  }
}

function denied(reason: string): NodemeshError {
  return new NodemeshError('ERR_NM_CA_DENIED', reason, { hint: 'an agent gets certificates only for pods of its own node' });
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
  res.end(data);
}

function readJson(req: IncomingMessage): Promise<Partial<SignRequest>> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new NodemeshError('ERR_NM_CA_BAD_REQUEST', `request body over ${MAX_BODY} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Partial<SignRequest>);
      } catch {
        reject(new NodemeshError('ERR_NM_CA_BAD_REQUEST', 'the request body is not JSON'));
      }
    });
    req.on('error', reject);
  });
}
