import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

/**
 * An in-process Kubernetes API server for tests: enough of the REST API for the real
 * @kubernetes/client-node (typed APIs, CustomObjectsApi, Watch) to run against it over
 * HTTP on 127.0.0.1.
 *
 * Kept only for faults a real API server cannot be made to produce on demand: a
 * connection cut mid-watch, injected 500s/503s or hanging requests, a 410 or a
 * compaction at a chosen moment, bookmarks now, and counting the requests a client makes.
 * Everything else (lists, watches, RBAC, CRD schemas and CEL rules, status and Events,
 * Leases, EndpointSlices) is tested on a real kube-apiserver: src/kube/testing/control-plane.ts,
 * test/kube-apiserver.test.ts and test/kube-e2e.test.ts. A fake agrees with our reading of
 * the API, not with the API: do not add behaviour here that a real server can show.
 *
 * What it does the way kube-apiserver does:
 * - LIST on cluster-wide and namespaced paths (`/api/v1/pods`,
 *   `/api/v1/namespaces/NS/pods`, `/apis/GROUP/VERSION/...`), with field selectors
 *   (`metadata.name`, `metadata.namespace`, and `spec.nodeName`/`status.phase` for pods;
 *   anything else is a 400 like the real one), label selectors (=, ==, !=, exists, !key,
 *   in, notin), `limit`/`continue` paging over a consistent snapshot, and a
 *   `{kind: XList, apiVersion, metadata: {resourceVersion}, items}` body whose items carry
 *   no kind/apiVersion for built-in kinds (only custom resources have them, as in reality).
 * - WATCH (`?watch=true`) streams newline-delimited `{type, object}` events. With a
 *   resourceVersion it replays what happened after it; without one (or "0") it starts with
 *   an ADDED for every object. An object that stops (starts) matching the selectors is
 *   DELETED (ADDED) for that watch. A resourceVersion older than the history window gets
 *   an `ERROR` event with a 410 `Expired` Status, then the stream ends. BOOKMARKs only go
 *   to watches that asked with `allowWatchBookmarks=true`. `timeoutSeconds` ends the stream.
 * - One global, monotonically increasing resourceVersion; DELETED events carry the
 *   resourceVersion of the deletion.
 * - PATCH (merge-patch or JSON patch) on objects and on the `/status` subresource (which
 *   only changes status, and honours a `metadata.resourceVersion` precondition with 409),
 *   POST (create, 409 when it exists), PUT, GET of one object.
 * - Status bodies (`kind: Status`) for every error.
 *
 * Test controls: create/update/upsert/delete, compact(), dropWatches(), sendBookmarks(),
 * failNextLists(n, status), failNextWatches(n, status), clearFailures(), setGroupInstalled(group, false)
 * (a CRD group that is not installed answers 404), failResource(plural, status | 'hang')
 * (every request on a resource fails, or is never answered, until cleared), and the logs `requests`,
 * `statusPatches` and `eventWrites`.
 */

import type { KubeObject } from './kube-object';
export type { KubeObject };

export interface ResourceType {
  /** '' for the core group. */
  group: string;
  version: string;
  kind: string;
  plural: string;
  namespaced: boolean;
  /** Extra field selectors it supports besides metadata.name and metadata.namespace. */
  fieldSelectors?: Record<string, (object: KubeObject) => string | undefined>;
  /** Built-in kinds: list items come without kind and apiVersion. */
  builtin: boolean;
}

const podFields: ResourceType['fieldSelectors'] = {
  'spec.nodeName': (o) => str((o.spec as Record<string, unknown> | undefined)?.nodeName) ?? '',
  'status.phase': (o) => str((o.status as Record<string, unknown> | undefined)?.phase) ?? '',
};

export const DEFAULT_RESOURCES: readonly ResourceType[] = [
  { group: '', version: 'v1', kind: 'Namespace', plural: 'namespaces', namespaced: false, builtin: true },
  { group: '', version: 'v1', kind: 'Pod', plural: 'pods', namespaced: true, builtin: true, fieldSelectors: podFields },
  { group: '', version: 'v1', kind: 'Service', plural: 'services', namespaced: true, builtin: true },
  { group: '', version: 'v1', kind: 'Event', plural: 'events', namespaced: true, builtin: true },
  { group: '', version: 'v1', kind: 'ConfigMap', plural: 'configmaps', namespaced: true, builtin: true },
  { group: 'discovery.k8s.io', version: 'v1', kind: 'EndpointSlice', plural: 'endpointslices', namespaced: true, builtin: true },
  { group: 'coordination.k8s.io', version: 'v1', kind: 'Lease', plural: 'leases', namespaced: true, builtin: true },
  { group: 'gateway.networking.k8s.io', version: 'v1', kind: 'HTTPRoute', plural: 'httproutes', namespaced: true, builtin: false },
  { group: 'gateway.networking.k8s.io', version: 'v1', kind: 'GRPCRoute', plural: 'grpcroutes', namespaced: true, builtin: false },
  { group: 'nodemesh.dev', version: 'v1alpha1', kind: 'TrafficPolicy', plural: 'trafficpolicies', namespaced: true, builtin: false },
  { group: 'nodemesh.dev', version: 'v1alpha1', kind: 'MeshMember', plural: 'meshmembers', namespaced: true, builtin: false },
  { group: 'security.istio.io', version: 'v1', kind: 'PeerAuthentication', plural: 'peerauthentications', namespaced: true, builtin: false },
  { group: 'security.istio.io', version: 'v1', kind: 'AuthorizationPolicy', plural: 'authorizationpolicies', namespaced: true, builtin: false },
  { group: 'gateway.networking.x-k8s.io', version: 'v1alpha1', kind: 'XAuthorizationPolicy', plural: 'xauthorizationpolicies', namespaced: true, builtin: false },
];

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  /** A GET with watch=true. */
  watch: boolean;
  /** A GET of a collection without watch. */
  list: boolean;
  status: number;
  contentType: string | undefined;
  body: unknown;
  time: number;
}

export interface StatusPatch {
  apiVersion: string;
  kind: string;
  namespace: string | undefined;
  name: string;
  contentType: string;
  patch: unknown;
  /** The answer: 200, 404, 409 ... */
  status: number;
}

export interface EventWrite {
  method: 'POST' | 'PATCH' | 'PUT';
  namespace: string;
  name: string;
  body: unknown;
  status: number;
}

export interface FakeApiServerOptions {
  resources?: readonly ResourceType[];
  /** Events kept for watches; older ones are compacted away (default 10000). */
  historyLimit?: number;
  /** When set, requests must carry `Authorization: Bearer <token>` (else 401). */
  token?: string;
}

interface HistoryEvent {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  resource: ResourceType;
  object: KubeObject;
  /** The object before a MODIFIED or DELETED. */
  old: KubeObject | undefined;
}

interface Selector {
  field: Array<{ key: string; op: '=' | '!='; value: string }>;
  label: Array<(labels: Record<string, string>) => boolean>;
}

interface Watcher {
  resource: ResourceType;
  namespace: string | undefined;
  selector: Selector;
  bookmarks: boolean;
  res: ServerResponse;
  socket: Socket;
  timer: NodeJS.Timeout | undefined;
  closed: boolean;
}

interface ContinueState {
  rv: number;
  items: KubeObject[];
}

class HttpError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function clone<T>(value: T): T {
  return structuredClone(value);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** RFC 3339 without fractional seconds, as Kubernetes writes metav1.Time. */
export function kubeTime(date = new Date()): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}

const REASONS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
  410: 'Expired',
  415: 'UnsupportedMediaType',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

export function statusObject(code: number, message: string, reason = REASONS[code] ?? 'Unknown'): KubeObject {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isRecord(patch)) return clone(patch);
  const out: Record<string, unknown> = isRecord(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}

/** RFC 6902 JSON patch (add, remove, replace, test). */
function jsonPatch(target: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw new HttpError(400, 'BadRequest', 'a JSON patch is a list of operations');
  let doc = clone(target);
  for (const op of ops) {
    if (!isRecord(op) || typeof op.path !== 'string') throw new HttpError(400, 'BadRequest', 'bad JSON patch operation');
    const parts = op.path === '' ? [] : op.path.slice(1).split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    if (parts.length === 0) {
      if (op.op === 'test') continue;
      doc = clone(op.value);
      continue;
    }
    let parent: unknown = doc;
    for (const part of parts.slice(0, -1)) {
      parent = Array.isArray(parent) ? parent[Number(part)] : isRecord(parent) ? parent[part] : undefined;
      if (parent === undefined) throw new HttpError(422, 'Invalid', `JSON patch path ${op.path} does not exist`);
    }
    const last = parts[parts.length - 1]!;
    const container = parent as Record<string, unknown> | unknown[];
    switch (op.op) {
      case 'add':
      case 'replace':
        if (Array.isArray(container)) {
          const index = last === '-' ? container.length : Number(last);
          if (op.op === 'add') container.splice(index, 0, clone(op.value));
          else container[index] = clone(op.value);
        } else container[last] = clone(op.value);
        break;
      case 'remove':
        if (Array.isArray(container)) container.splice(Number(last), 1);
        else delete container[last];
        break;
      case 'test': {
        const current = Array.isArray(container) ? container[Number(last)] : container[last];
        if (JSON.stringify(current) !== JSON.stringify(op.value)) throw new HttpError(422, 'Invalid', `JSON patch test failed at ${op.path}`);
        break;
      }
      default:
        throw new HttpError(400, 'BadRequest', `JSON patch operation ${String(op.op)} is not supported here`);
    }
  }
  return doc;
}

function splitTerms(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(current);
      current = '';
    } else current += ch;
  }
  if (current !== '') out.push(current);
  return out.map((t) => t.trim()).filter((t) => t !== '');
}

function parseLabelSelector(text: string | undefined): Selector['label'] {
  if (text === undefined || text === '') return [];
  return splitTerms(text).map((term) => {
    let m = /^([^\s!=]+)\s+(in|notin)\s+\((.*)\)$/.exec(term);
    if (m) {
      const key = m[1]!;
      const values = new Set(m[3]!.split(',').map((v) => v.trim()));
      return m[2] === 'in' ? (l) => l[key] !== undefined && values.has(l[key]!) : (l) => l[key] === undefined || !values.has(l[key]!);
    }
    m = /^([^\s!=]+)\s*(==|=|!=)\s*(.*)$/.exec(term);
    if (m) {
      const [, key, op, value] = m as unknown as [string, string, string, string];
      return op === '!=' ? (l) => l[key] !== value : (l) => l[key] === value;
    }
    if (term.startsWith('!')) {
      const key = term.slice(1).trim();
      return (l) => l[key] === undefined;
    }
    if (/^[^\s!=(),]+$/.test(term)) return (l) => l[term] !== undefined;
    throw new HttpError(400, 'BadRequest', `unable to parse requirement: ${term}`);
  });
}

function parseFieldSelector(text: string | undefined, resource: ResourceType): Selector['field'] {
  if (text === undefined || text === '') return [];
  return splitTerms(text).map((term) => {
    const m = /^([^!=]+)(==|=|!=)(.*)$/.exec(term);
    if (!m) throw new HttpError(400, 'BadRequest', `invalid selector: '${text}'; can't understand '${term}'`);
    const key = m[1]!.trim();
    if (key !== 'metadata.name' && key !== 'metadata.namespace' && !(resource.fieldSelectors && key in resource.fieldSelectors)) {
      throw new HttpError(400, 'BadRequest', `field label not supported: ${key}`);
    }
    return { key, op: m[2] === '!=' ? '!=' : '=', value: m[3]!.trim() };
  });
}

function fieldValue(object: KubeObject, key: string, resource: ResourceType): string {
  if (key === 'metadata.name') return object.metadata?.name ?? '';
  if (key === 'metadata.namespace') return object.metadata?.namespace ?? '';
  return resource.fieldSelectors?.[key]?.(object) ?? '';
}

function apiVersionOf(resource: ResourceType): string {
  return resource.group === '' ? resource.version : `${resource.group}/${resource.version}`;
}

function specOf(object: KubeObject): string {
  const { metadata: _metadata, status: _status, ...rest } = object;
  return JSON.stringify(rest);
}

export class FakeApiServer {
  readonly requests: RecordedRequest[] = [];
  readonly statusPatches: StatusPatch[] = [];
  readonly eventWrites: EventWrite[] = [];
  private readonly server: Server;
  private readonly resources: ResourceType[];
  private readonly store = new Map<string, Map<string, KubeObject>>();
  private history: HistoryEvent[] = [];
  /** Watches from a resourceVersion below this get 410. */
  private oldestRV = 0;
  private rv = 100;
  private readonly watchers = new Set<Watcher>();
  private readonly continues = new Map<string, ContinueState>();
  private readonly historyLimit: number;
  private readonly token: string | undefined;
  private readonly uninstalled = new Set<string>();
  private listFailures: Array<{ status: number; message: string }> = [];
  private watchFailures: Array<{ status: number; message: string }> = [];
  private readonly resourceFailures = new Map<string, number | 'hang'>();
  private portNumber = 0;

  private constructor(options: FakeApiServerOptions) {
    this.resources = [...(options.resources ?? DEFAULT_RESOURCES)];
    this.historyLimit = options.historyLimit ?? 10000;
    this.token = options.token;
    for (const r of this.resources) this.store.set(this.resourceKey(r), new Map());
    this.server = createServer((req, res) => this.handle(req, res));
  }

  static async start(options: FakeApiServerOptions = {}): Promise<FakeApiServer> {
    const server = new FakeApiServer(options);
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject);
      server.server.listen(0, '127.0.0.1', () => resolve());
    });
    server.portNumber = (server.server.address() as AddressInfo).port;
    return server;
  }

  get port(): number {
    return this.portNumber;
  }

  get url(): string {
    return `http://127.0.0.1:${this.portNumber}`;
  }

  /** The current (latest) resourceVersion. */
  get resourceVersion(): string {
    return String(this.rv);
  }

  /** Open watch connections, optionally of one kind. */
  openWatches(kind?: string): number {
    let n = 0;
    for (const w of this.watchers) if (!w.closed && (kind === undefined || w.resource.kind === kind)) n++;
    return n;
  }

  // ---- objects -------------------------------------------------------------------

  private resourceKey(r: ResourceType): string {
    return `${r.group}/${r.plural}`;
  }

  private resourceFor(object: KubeObject): ResourceType {
    const apiVersion = object.apiVersion ?? '';
    const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
    const found = this.resources.find((r) => r.group === group && r.version === version && r.kind === object.kind);
    if (!found) throw new Error(`fake apiserver: no resource type for ${apiVersion} ${String(object.kind)}`);
    return found;
  }

  private objectKey(resource: ResourceType, namespace: string | undefined, name: string): string {
    return resource.namespaced ? `${namespace ?? 'default'}/${name}` : name;
  }

  private nextRV(): number {
    this.rv += 1;
    return this.rv;
  }

  /** Creates an object (uid, resourceVersion, generation and creationTimestamp filled in). */
  create(object: KubeObject): KubeObject {
    const resource = this.resourceFor(object);
    return this.createIn(resource, clone(object));
  }

  private createIn(resource: ResourceType, object: KubeObject): KubeObject {
    const meta = (object.metadata ??= {});
    if (!meta.name) throw new HttpError(422, 'Invalid', 'metadata.name: Required value');
    if (resource.namespaced) meta.namespace ??= 'default';
    else delete meta.namespace;
    const key = this.objectKey(resource, meta.namespace, meta.name);
    const objects = this.store.get(this.resourceKey(resource))!;
    if (objects.has(key)) throw new HttpError(409, 'AlreadyExists', `${resource.plural} "${meta.name}" already exists`);
    object.apiVersion = apiVersionOf(resource);
    object.kind = resource.kind;
    meta.uid ??= randomUUID();
    meta.creationTimestamp ??= kubeTime();
    meta.generation = 1;
    meta.resourceVersion = String(this.nextRV());
    objects.set(key, object);
    this.record({ rv: this.rv, type: 'ADDED', resource, object: clone(object), old: undefined });
    return clone(object);
  }

  /** Replaces an existing object (generation goes up when anything but metadata/status changed). */
  update(object: KubeObject): KubeObject {
    const resource = this.resourceFor(object);
    return this.updateIn(resource, clone(object), false);
  }

  /** create() or update(), whichever applies. */
  upsert(object: KubeObject): KubeObject {
    const resource = this.resourceFor(object);
    const existing = this.get(object.apiVersion ?? '', object.kind ?? '', object.metadata?.namespace, object.metadata?.name ?? '');
    return existing ? this.updateIn(resource, clone(object), false) : this.createIn(resource, clone(object));
  }

  private updateIn(resource: ResourceType, object: KubeObject, statusOnly: boolean, precondition?: string): KubeObject {
    const meta = (object.metadata ??= {});
    if (resource.namespaced) meta.namespace ??= 'default';
    const key = this.objectKey(resource, meta.namespace, meta.name ?? '');
    const objects = this.store.get(this.resourceKey(resource))!;
    const old = objects.get(key);
    if (!old) throw new HttpError(404, 'NotFound', `${resource.plural} "${meta.name}" not found`);
    if (precondition !== undefined && precondition !== '' && precondition !== old.metadata!.resourceVersion) {
      throw new HttpError(409, 'Conflict', `Operation cannot be fulfilled on ${resource.plural} "${meta.name}": the object has been modified; please apply your changes to the latest version and try again`);
    }
    let next: KubeObject;
    if (statusOnly) {
      next = clone(old);
      if (object.status === undefined) delete next.status;
      else next.status = clone(object.status);
    } else {
      next = object;
      next.apiVersion = apiVersionOf(resource);
      next.kind = resource.kind;
      next.metadata = { ...meta, uid: old.metadata!.uid, creationTimestamp: old.metadata!.creationTimestamp, generation: old.metadata!.generation };
      if (specOf(next) !== specOf(old)) next.metadata.generation = (old.metadata!.generation ?? 1) + 1;
    }
    next.metadata!.resourceVersion = String(this.nextRV());
    objects.set(key, next);
    this.record({ rv: this.rv, type: 'MODIFIED', resource, object: clone(next), old: clone(old) });
    return clone(next);
  }

  /** Deletes an object; false when it was not there. */
  delete(object: KubeObject): boolean {
    const resource = this.resourceFor(object);
    const key = this.objectKey(resource, object.metadata?.namespace, object.metadata?.name ?? '');
    const objects = this.store.get(this.resourceKey(resource))!;
    const old = objects.get(key);
    if (!old) return false;
    objects.delete(key);
    const gone = clone(old);
    gone.metadata!.resourceVersion = String(this.nextRV());
    this.record({ rv: this.rv, type: 'DELETED', resource, object: gone, old });
    return true;
  }

  /** One object as stored (a copy), or undefined. */
  get(apiVersion: string, kind: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const resource = this.resourceFor({ apiVersion, kind });
    const found = this.store.get(this.resourceKey(resource))!.get(this.objectKey(resource, namespace, name));
    return found ? clone(found) : undefined;
  }

  /** Every object of a kind (copies). */
  list(apiVersion: string, kind: string): KubeObject[] {
    const resource = this.resourceFor({ apiVersion, kind });
    return [...this.store.get(this.resourceKey(resource))!.values()].map(clone);
  }

  // ---- test controls -----------------------------------------------------------------

  /** Forgets the history: a watch from any resourceVersion before now gets 410 Gone. */
  compact(): void {
    this.history = [];
    this.oldestRV = this.rv;
    this.continues.clear();
  }

  /** Destroys every open watch connection (as a network failure or an apiserver restart would). */
  dropWatches(): void {
    for (const w of this.watchers) {
      w.closed = true;
      if (w.timer) clearTimeout(w.timer);
      w.socket.destroy();
    }
    this.watchers.clear();
  }

  /** A BOOKMARK with the current resourceVersion to every watch that allows them. */
  sendBookmarks(): void {
    for (const w of this.watchers) {
      if (w.closed || !w.bookmarks) continue;
      this.send(w, 'BOOKMARK', { kind: w.resource.kind, apiVersion: apiVersionOf(w.resource), metadata: { resourceVersion: String(this.rv) } });
    }
  }

  /** The next n LIST requests fail with this status. */
  failNextLists(n: number, status = 500, message = 'injected failure'): void {
    for (let i = 0; i < n; i++) this.listFailures.push({ status, message });
  }

  /** The next n WATCH requests fail with this status (before streaming). */
  failNextWatches(n: number, status = 500, message = 'injected failure'): void {
    for (let i = 0; i < n; i++) this.watchFailures.push({ status, message });
  }

  /** Forgets failures set up by failNextLists/failNextWatches that did not happen yet. */
  clearFailures(): void {
    this.listFailures = [];
    this.watchFailures = [];
  }

  /**
   * Every request on the resource with this plural answers `failure` (an HTTP status) or,
   * with 'hang', is never answered (an API server that accepts and stalls), until it is
   * called again with undefined.
   */
  failResource(plural: string, failure: number | 'hang' | undefined): void {
    if (failure === undefined) this.resourceFailures.delete(plural);
    else this.resourceFailures.set(plural, failure);
  }

  /** Uninstalls (404 for everything under /apis/GROUP) or reinstalls a CRD group. */
  setGroupInstalled(group: string, installed: boolean): void {
    if (installed) {
      this.uninstalled.delete(group);
      return;
    }
    this.uninstalled.add(group);
    for (const w of this.watchers) {
      if (w.resource.group !== group) continue;
      this.closeWatcher(w);
    }
  }

  /** Clears the request log. */
  clearRequests(): void {
    this.requests.length = 0;
  }

  async close(): Promise<void> {
    this.dropWatches();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  // ---- history and watches -------------------------------------------------------------

  private record(event: HistoryEvent): void {
    this.history.push(event);
    if (this.history.length > this.historyLimit) {
      const dropped = this.history.splice(0, this.history.length - this.historyLimit);
      this.oldestRV = dropped[dropped.length - 1]!.rv;
    }
    for (const w of this.watchers) this.deliver(w, event);
  }

  private matches(w: { resource: ResourceType; namespace: string | undefined; selector: Selector }, object: KubeObject | undefined): boolean {
    if (!object) return false;
    if (w.namespace !== undefined && object.metadata?.namespace !== w.namespace) return false;
    for (const term of w.selector.field) {
      const value = fieldValue(object, term.key, w.resource);
      if (term.op === '=' ? value !== term.value : value === term.value) return false;
    }
    const labels = object.metadata?.labels ?? {};
    return w.selector.label.every((test) => test(labels));
  }

  private deliver(w: Watcher, event: HistoryEvent): void {
    if (w.closed || this.resourceKey(w.resource) !== this.resourceKey(event.resource)) return;
    const now = this.matches(w, event.object);
    const before = this.matches(w, event.old);
    if (event.type === 'ADDED') {
      if (now) this.send(w, 'ADDED', event.object);
    } else if (event.type === 'MODIFIED') {
      if (now && before) this.send(w, 'MODIFIED', event.object);
      else if (now) this.send(w, 'ADDED', event.object);
      else if (before) this.send(w, 'DELETED', event.object);
    } else if (before) {
      this.send(w, 'DELETED', event.object);
    }
  }

  private send(w: Watcher, type: string, object: KubeObject): void {
    if (w.closed) return;
    w.res.write(`${JSON.stringify({ type, object })}\n`);
  }

  private closeWatcher(w: Watcher): void {
    if (w.closed) return;
    w.closed = true;
    if (w.timer) clearTimeout(w.timer);
    this.watchers.delete(w);
    w.res.end();
  }

  // ---- HTTP --------------------------------------------------------------------------

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://fake');
      const query = Object.fromEntries(url.searchParams.entries());
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      try {
        body = text === '' ? undefined : JSON.parse(text);
      } catch {
        body = text;
      }
      const isGet = req.method === 'GET';
      const entry: RecordedRequest = {
        method: req.method ?? 'GET',
        path: url.pathname,
        query,
        watch: isGet && (query.watch === 'true' || query.watch === '1'),
        list: false,
        status: 200,
        contentType: req.headers['content-type'],
        body,
        time: Date.now(),
      };
      this.requests.push(entry);
      try {
        if (this.token !== undefined && req.headers.authorization !== `Bearer ${this.token}`) throw new HttpError(401, 'Unauthorized', 'Unauthorized');
        this.route(req, res, url, query, body, entry);
      } catch (err) {
        if (err instanceof HttpError) {
          entry.status = err.code;
          this.reply(res, err.code, statusObject(err.code, err.message, err.reason));
        } else {
          entry.status = 500;
          this.reply(res, 500, statusObject(500, (err as Error).message));
        }
      }
    });
  }

  private reply(res: ServerResponse, code: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
  }

  private notFound(): HttpError {
    return new HttpError(404, 'NotFound', 'the server could not find the requested resource');
  }

  private route(req: IncomingMessage, res: ServerResponse, url: URL, query: Record<string, string>, body: unknown, entry: RecordedRequest): void {
    const parts = url.pathname.split('/').filter((p) => p !== '');
    let group: string;
    let version: string;
    let rest: string[];
    if (parts[0] === 'api' && parts.length >= 2) {
      group = '';
      version = parts[1]!;
      rest = parts.slice(2);
    } else if (parts[0] === 'apis' && parts.length >= 3) {
      group = parts[1]!;
      version = parts[2]!;
      rest = parts.slice(3);
    } else throw this.notFound();
    if (this.uninstalled.has(group)) throw this.notFound();
    // [plural] [plural name] [plural name sub] | namespaces NS plural [name [sub]]
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const [plural, name, sub] = rest;
    const resource = this.resources.find((r) => r.group === group && r.version === version && r.plural === plural);
    if (!resource || rest.length > 3 || (sub !== undefined && sub !== 'status')) throw this.notFound();
    if (namespace !== undefined && !resource.namespaced) throw this.notFound();
    const method = req.method ?? 'GET';
    const failure = this.resourceFailures.get(resource.plural);
    if (failure === 'hang') return; // close() ends the connection
    if (failure !== undefined) throw new HttpError(failure, REASONS[failure] ?? 'Unknown', 'injected failure');

    if (name === undefined) {
      if (method === 'GET') {
        if (entry.watch) return this.watch(req, res, resource, namespace, query, entry);
        entry.list = true;
        return this.reply(res, 200, this.listBody(resource, namespace, query));
      }
      if (method === 'POST') {
        if (!isRecord(body)) throw new HttpError(400, 'BadRequest', 'the body must be an object');
        const object = clone(body) as KubeObject;
        if (resource.namespaced) {
          object.metadata ??= {};
          if (object.metadata.namespace !== undefined && namespace !== undefined && object.metadata.namespace !== namespace) {
            throw new HttpError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
          }
          object.metadata.namespace = namespace ?? object.metadata.namespace ?? 'default';
        }
        let created: KubeObject;
        try {
          created = this.createIn(resource, object);
        } catch (err) {
          if (resource.kind === 'Event') this.eventWrites.push({ method: 'POST', namespace: namespace ?? '', name: object.metadata?.name ?? '', body, status: (err as HttpError).code ?? 500 });
          throw err;
        }
        if (resource.kind === 'Event') this.eventWrites.push({ method: 'POST', namespace: namespace ?? '', name: created.metadata!.name!, body, status: 201 });
        entry.status = 201;
        return this.reply(res, 201, created);
      }
      throw new HttpError(405, 'MethodNotAllowed', `${method} is not supported on a collection here`);
    }

    const key = this.objectKey(resource, namespace, name);
    const current = this.store.get(this.resourceKey(resource))!.get(key);
    if (method === 'GET') {
      if (!current) throw new HttpError(404, 'NotFound', `${resource.plural} "${name}" not found`);
      return this.reply(res, 200, current);
    }
    if (method === 'PATCH' || method === 'PUT') {
      const contentType = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
      const isStatus = sub === 'status';
      const answer = (code: number): void => {
        if (isStatus) {
          this.statusPatches.push({ apiVersion: apiVersionOf(resource), kind: resource.kind, namespace, name, contentType, patch: body, status: code });
        }
        if (resource.kind === 'Event') this.eventWrites.push({ method, namespace: namespace ?? '', name, body, status: code });
      };
      try {
        if (!current) throw new HttpError(404, 'NotFound', `${resource.plural} "${name}" not found`);
        let next: unknown;
        if (method === 'PUT') next = body;
        else if (contentType === 'application/merge-patch+json') next = mergePatch(current, body);
        else if (contentType === 'application/json-patch+json') next = jsonPatch(current, body);
        else throw new HttpError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json (got ${contentType})`);
        if (!isRecord(next)) throw new HttpError(422, 'Invalid', 'the patched object is not an object');
        const patched = next as KubeObject;
        const precondition = patched.metadata?.resourceVersion;
        patched.metadata = { ...(patched.metadata ?? {}), name, namespace: current.metadata?.namespace };
        const updated = this.updateIn(resource, patched, isStatus, precondition);
        answer(200);
        return this.reply(res, 200, updated);
      } catch (err) {
        answer(err instanceof HttpError ? err.code : 500);
        throw err;
      }
    }
    if (method === 'DELETE') {
      if (!current) throw new HttpError(404, 'NotFound', `${resource.plural} "${name}" not found`);
      this.delete(current);
      return this.reply(res, 200, current);
    }
    throw new HttpError(405, 'MethodNotAllowed', `${method} is not supported here`);
  }

  private selectorFrom(resource: ResourceType, query: Record<string, string>): Selector {
    return { field: parseFieldSelector(query.fieldSelector, resource), label: parseLabelSelector(query.labelSelector) };
  }

  private listBody(resource: ResourceType, namespace: string | undefined, query: Record<string, string>): KubeObject {
    const failure = this.listFailures.shift();
    if (failure) throw new HttpError(failure.status, REASONS[failure.status] ?? 'Unknown', failure.message);
    const limit = query.limit !== undefined ? Number(query.limit) : 0;
    let state: ContinueState;
    let offset = 0;
    if (query.continue !== undefined && query.continue !== '') {
      const [id, at] = Buffer.from(query.continue, 'base64url').toString('utf8').split('|');
      const found = this.continues.get(id ?? '');
      if (!found) throw new HttpError(410, 'Expired', 'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.');
      state = found;
      offset = Number(at);
    } else {
      const selector = this.selectorFrom(resource, query);
      const filter = { resource, namespace, selector };
      const items = [...this.store.get(this.resourceKey(resource))!.entries()]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([, o]) => o)
        .filter((o) => this.matches(filter, o))
        .map((o) => {
          const item = clone(o);
          if (resource.builtin) {
            delete item.kind;
            delete item.apiVersion;
          }
          return item;
        });
      state = { rv: this.rv, items };
    }
    let items = state.items.slice(offset);
    const metadata: Record<string, unknown> = { resourceVersion: String(state.rv) };
    if (limit > 0 && items.length > limit) {
      items = items.slice(0, limit);
      const id = randomUUID();
      this.continues.set(id, state);
      metadata.continue = Buffer.from(`${id}|${offset + limit}`).toString('base64url');
      metadata.remainingItemCount = state.items.length - offset - limit;
    }
    return { kind: `${resource.kind}List`, apiVersion: apiVersionOf(resource), metadata, items };
  }

  private watch(req: IncomingMessage, res: ServerResponse, resource: ResourceType, namespace: string | undefined, query: Record<string, string>, entry: RecordedRequest): void {
    const failure = this.watchFailures.shift();
    if (failure) throw new HttpError(failure.status, REASONS[failure.status] ?? 'Unknown', failure.message);
    const selector = this.selectorFrom(resource, query);
    const w: Watcher = {
      resource,
      namespace,
      selector,
      bookmarks: query.allowWatchBookmarks === 'true',
      res,
      socket: req.socket,
      timer: undefined,
      closed: false,
    };
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    entry.status = 200;
    const from = query.resourceVersion;
    if (from !== undefined && from !== '' && from !== '0') {
      const n = Number(from);
      if (!Number.isInteger(n) || n < this.oldestRV) {
        // What kube-apiserver does: 200, one ERROR event, end of stream.
        res.write(`${JSON.stringify({ type: 'ERROR', object: statusObject(410, `too old resource version: ${from} (${this.oldestRV})`, 'Expired') })}\n`);
        res.end();
        return;
      }
      this.watchers.add(w);
      for (const event of this.history) if (event.rv > n) this.deliver(w, event);
    } else {
      this.watchers.add(w);
      const objects = [...this.store.get(this.resourceKey(resource))!.values()].filter((o) => this.matches(w, o));
      for (const o of objects) this.send(w, 'ADDED', o);
    }
    const timeout = Number(query.timeoutSeconds);
    if (Number.isFinite(timeout) && timeout > 0) w.timer = setTimeout(() => this.closeWatcher(w), timeout * 1000);
    const gone = (): void => {
      w.closed = true;
      if (w.timer) clearTimeout(w.timer);
      this.watchers.delete(w);
    };
    res.on('close', gone);
  }
}

/** A KubeConfig for the real client-node that talks to the fake server. */
export function kubeConfigFor(server: FakeApiServer, options: { token?: string; namespace?: string } = {}): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: server.url, skipTLSVerify: true }],
    users: [{ name: 'fake-user', token: options.token ?? 'fake-token' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'fake-user', namespace: options.namespace ?? 'default' }],
    currentContext: 'fake',
  });
  return kc;
}
