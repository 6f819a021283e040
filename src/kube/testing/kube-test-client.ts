import { request as httpsRequest } from 'node:https';
import { NodemeshError } from '../../errors';
import type { KubeObject } from './kube-object';

/**
 * A small REST client for tests against a real kube-apiserver: it shows the status code
 * and the Status body the server answered (a 422 from a CEL rule, a 403 from RBAC), where
 * a typed client would hide them behind an exception. Resource paths come from the
 * server's own discovery, so any kind the server serves (a CRD's too) can be created,
 * applied and deleted by its apiVersion and kind.
 */

export interface KubeReply<T = KubeObject> {
  status: number;
  body: T;
}

/** A non-2xx answer: the server's Status message, with its code and reason. */
export class KubeRequestError extends Error {
  constructor(readonly method: string, readonly path: string, readonly status: number, readonly body: unknown) {
    super(`${method} ${path}: HTTP ${status}: ${(body as { message?: string })?.message ?? JSON.stringify(body)}`);
  }
}

interface ApiResource {
  name: string;
  kind: string;
  namespaced: boolean;
}

export interface ClientOptions {
  server: string;
  caPem: string;
  token: string;
  /** Bound on each request (ms, default 30 s). */
  timeoutMs?: number;
}

export class KubeTestClient {
  private readonly discovery = new Map<string, Promise<ApiResource[]>>();

  constructor(private readonly options: ClientOptions) {}

  /** One request; resolves with any status (the caller decides what it expected). */
  send<T = KubeObject>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<KubeReply<T>> {
    const url = new URL(path, this.options.server);
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const timeoutMs = this.options.timeoutMs ?? 30_000;
    return new Promise((resolve, reject) => {
      const req = httpsRequest(url, {
        method,
        ca: this.options.caPem,
        headers: {
          authorization: `Bearer ${this.options.token}`,
          accept: 'application/json',
          ...(payload === undefined ? {} : { 'content-type': contentType, 'content-length': Buffer.byteLength(payload) }),
        },
        timeout: timeoutMs,
      });
      req.on('timeout', () => req.destroy(new NodemeshError('ERR_NM_DEADLINE', `${method} ${path} got no answer within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = text === '' ? {} : JSON.parse(text);
          } catch {
            // not JSON (e.g. /readyz's "ok"): the text itself
          }
          resolve({ status: res.statusCode ?? 0, body: parsed as T });
        });
      });
      req.end(payload);
    });
  }

  /** Like send(), but a non-2xx answer rejects with the server's message. */
  async call<T = KubeObject>(method: string, path: string, body?: unknown, contentType?: string): Promise<T> {
    const reply = await this.send<T>(method, path, body, contentType);
    if (reply.status < 200 || reply.status > 299) throw new KubeRequestError(method, path, reply.status, reply.body);
    return reply.body;
  }

  /** The API path of an object's collection (name undefined) or of the object itself. */
  async pathOf(apiVersion: string, kind: string, namespace: string | undefined, name?: string): Promise<string> {
    const resource = (await this.resources(apiVersion)).find((r) => r.kind === kind && !r.name.includes('/'));
    if (!resource) throw new NodemeshError('ERR_NM_TEST_KIND', `the API server serves no kind ${kind} in ${apiVersion}`, { hint: 'is its CRD installed and established?' });
    const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    if (resource.namespaced && !namespace) throw new NodemeshError('ERR_NM_TEST_KIND', `${kind} is namespaced: give the object a namespace`);
    const collection = resource.namespaced ? `${base}/namespaces/${namespace}/${resource.name}` : `${base}/${resource.name}`;
    return name === undefined ? collection : `${collection}/${encodeURIComponent(name)}`;
  }

  private resources(apiVersion: string): Promise<ApiResource[]> {
    let found = this.discovery.get(apiVersion);
    if (!found) {
      const path = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
      found = this.call<{ resources: ApiResource[] }>('GET', path).then((list) => list.resources);
      // A CRD installed later must be found: forget failures and empty answers.
      found.catch(() => this.discovery.delete(apiVersion));
      this.discovery.set(apiVersion, found);
    }
    return found;
  }

  /** Forgets discovery (after a CRD was installed). */
  forgetDiscovery(): void {
    this.discovery.clear();
  }

  private async objectPath(obj: KubeObject, withName: boolean): Promise<string> {
    if (!obj.apiVersion || !obj.kind || !obj.metadata?.name) throw new NodemeshError('ERR_NM_TEST_KIND', 'an object needs apiVersion, kind and metadata.name');
    return this.pathOf(obj.apiVersion, obj.kind, obj.metadata.namespace, withName ? obj.metadata.name : undefined);
  }

  async create<T extends KubeObject = KubeObject>(obj: KubeObject): Promise<T> {
    return this.call<T>('POST', await this.objectPath(obj, false), obj);
  }

  /** create() that answers with the reply instead of rejecting (to assert on a refusal). */
  async tryCreate(obj: KubeObject): Promise<KubeReply> {
    return this.send('POST', await this.objectPath(obj, false), obj);
  }

  async get<T extends KubeObject = KubeObject>(apiVersion: string, kind: string, namespace: string | undefined, name: string): Promise<T | undefined> {
    const reply = await this.send<T>('GET', await this.pathOf(apiVersion, kind, namespace, name));
    if (reply.status === 404) return undefined;
    if (reply.status !== 200) throw new KubeRequestError('GET', kind, reply.status, reply.body);
    return reply.body;
  }

  async list<T extends KubeObject = KubeObject>(apiVersion: string, kind: string, namespace?: string, query = ''): Promise<T[]> {
    const list = await this.call<{ items: T[] }>('GET', `${await this.pathOf(apiVersion, kind, namespace)}${query ? `?${query}` : ''}`);
    return list.items;
  }

  /** JSON merge patch of the object (or of its status subresource). */
  async mergePatch<T extends KubeObject = KubeObject>(obj: KubeObject, patch: unknown, subresource?: 'status'): Promise<T> {
    const path = `${await this.objectPath(obj, true)}${subresource ? `/${subresource}` : ''}`;
    return this.call<T>('PATCH', path, patch, 'application/merge-patch+json');
  }

  /**
   * Server-side apply with strict field validation: an unknown or duplicate field is an
   * error, as `kubectl apply --server-side --validate=strict` makes it. With dryRun the
   * server runs admission and validation and stores nothing.
   */
  async apply(obj: KubeObject, options: { dryRun?: boolean; fieldManager?: string } = {}): Promise<KubeReply> {
    const query = new URLSearchParams({ fieldManager: options.fieldManager ?? 'nodemesh-test', fieldValidation: 'Strict', force: 'true' });
    if (options.dryRun) query.set('dryRun', 'All');
    return this.send('PATCH', `${await this.objectPath(obj, true)}?${query}`, obj, 'application/apply-patch+yaml');
  }

  /** Deletes at once (grace 0: no kubelet will confirm a pod's end) and resolves true when it existed. */
  async delete(obj: KubeObject): Promise<boolean> {
    const reply = await this.send('DELETE', await this.objectPath(obj, true), { kind: 'DeleteOptions', apiVersion: 'v1', gracePeriodSeconds: 0, propagationPolicy: 'Background' });
    if (reply.status === 404) return false;
    if (reply.status < 200 || reply.status > 299) throw new KubeRequestError('DELETE', obj.metadata?.name ?? '', reply.status, reply.body);
    return true;
  }
}
