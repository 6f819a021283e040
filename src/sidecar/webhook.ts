import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describeError } from '../errors';
import { logger } from '../log';
import { MODE_KEY } from '../mesh/model';
import { podDecision, podPatch, type InjectOptions } from './inject';

/**
 * The sidecar injector as a mutating admission webhook: AdmissionReview v1 in on POST
 * /inject, AdmissionReview v1 out, with a JSON Patch that does what `nodemesh inject`
 * does (the same injectPod()). The MutatingWebhookConfiguration's selectors decide which
 * pods are sent here (namespace label or pod label `nodemesh.dev/mode: sidecar`:
 * selectors cannot see annotations); this handler only says no for pods that opt out
 * themselves (annotation other than sidecar, hostNetwork). It never denies a pod: every
 * answer is allowed, with or without a patch, and the chart sets failurePolicy Ignore,
 * so a webhook that is down never blocks pod creation.
 */

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

const MAX_BODY_BYTES = 4 * 1024 * 1024;

export interface AdmissionResponse {
  uid: string;
  allowed: true;
  patchType?: 'JSONPatch';
  patch?: string;
  warnings?: string[];
}

/** What the webhook answers to one AdmissionReview (an object parsed from JSON). */
export function reviewAdmission(review: unknown, options: InjectOptions): { response: AdmissionResponse; injected: boolean; reason: string } {
  const request = (review as Obj | null)?.request as Obj | undefined;
  const uid = typeof request?.uid === 'string' ? request.uid : '';
  const allow = (reason: string) => ({ response: { uid, allowed: true as const }, injected: false, reason });
  if (!request || typeof request !== 'object') return allow('no request in the AdmissionReview');
  const kind = request.kind as Obj | undefined;
  if (kind?.kind !== 'Pod' || (kind.group ?? '') !== '') return allow(`not a Pod (${String(kind?.kind)})`);
  if (request.operation !== undefined && request.operation !== 'CREATE') return allow(`operation ${String(request.operation)}`);
  const pod = request.object as Obj | undefined;
  if (!pod || typeof pod !== 'object') return allow('no object in the request');
  const annotation = pod.metadata?.annotations?.[MODE_KEY] as string | undefined;
  if (annotation !== undefined && annotation !== 'sidecar') return allow(`annotation ${MODE_KEY} is ${annotation}`);
  const decision = podDecision(pod.metadata, pod.spec);
  if (!decision.injected) return allow(decision.reason);
  const patch = podPatch(pod, options);
  if (patch.length === 0) return allow('already injected');
  return {
    response: { uid, allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') },
    injected: true,
    reason: 'injected',
  };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        reject(Object.assign(new Error(`request body over ${MAX_BODY_BYTES} bytes`), { status: 413 }));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** The request handler: POST /inject (AdmissionReview), GET /healthz. */
export function webhookHandler(options: InjectOptions) {
  const log = logger('webhook');
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'https://webhook');
    if (url.pathname === '/healthz' && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    if (url.pathname !== '/inject') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: POST AdmissionReviews to /inject\n');
      return;
    }
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'POST', 'content-type': 'text/plain' }).end('POST an AdmissionReview\n');
      return;
    }
    let review: Obj;
    try {
      review = JSON.parse(await readBody(req)) as Obj;
    } catch (err) {
      const status = (err as { status?: number }).status ?? 400;
      res.writeHead(status, { 'content-type': 'text/plain' }).end(`not an AdmissionReview: ${describeError(err)}\n`);
      return;
    }
    let answer;
    try {
      answer = reviewAdmission(review, options);
    } catch (err) {
      // Never block a pod on our own bug: allow it unchanged, and say why.
      log.error({ err: describeError(err) }, 'injection failed; the pod is admitted unchanged');
      const uid = typeof review?.request?.uid === 'string' ? review.request.uid : '';
      answer = { response: { uid, allowed: true as const, warnings: [`nodemesh: sidecar injection failed: ${describeError(err)}`] }, injected: false, reason: 'error' };
    }
    const pod = review?.request?.object?.metadata as Obj | undefined;
    log.info({ namespace: review?.request?.namespace, pod: pod?.name ?? pod?.generateName, injected: answer.injected, reason: answer.reason }, 'admission review');
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ apiVersion: review.apiVersion ?? 'admission.k8s.io/v1', kind: 'AdmissionReview', response: answer.response }));
  };
}

export interface WebhookServerOptions extends InjectOptions {
  cert: string | Buffer;
  key: string | Buffer;
  port: number;
  host?: string;
}

/** Starts the HTTPS server; resolves once it listens. */
export async function startWebhookServer(options: WebhookServerOptions): Promise<Server> {
  const handler = webhookHandler(options);
  const server = createServer({ cert: options.cert, key: options.key, minVersion: 'TLSv1.2' }, (req, res) => void handler(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  return server;
}
