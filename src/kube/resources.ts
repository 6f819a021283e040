import { CoreV1Api, CustomObjectsApi, DiscoveryV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { K8sObject } from '../config/k8s-yaml';
import type { ApiResource } from '../kinds/object-kind';
import { KINDS } from '../kinds/registry';

/**
 * Where the Kubernetes resources the agent reads (the registry of kinds, src/kinds) live
 * in the REST API, and how to LIST them with client-node. Watches go through
 * client-node's Watch on `collectionPath`.
 */

/** An API resource of the registry (src/kinds) with the id the source's logs and metrics use. */
export interface KubeResource extends ApiResource {
  /** Short id for logs and metrics: "pods", "httproutes" ... */
  id: string;
}

export function kubeResource(r: ApiResource): KubeResource {
  return { id: r.plural, ...r };
}

/** Every resource the KubeSource watches, in the order their objects are converted: the registry's watched kinds. */
export const MESH_RESOURCES: readonly KubeResource[] = KINDS.filter((k) => k.watched).map((k) => kubeResource(k.resource));

export function apiVersionOf(r: Pick<KubeResource, 'group' | 'version'>): string {
  return r.group === '' ? r.version : `${r.group}/${r.version}`;
}

/** `/api/v1/pods`, `/apis/discovery.k8s.io/v1/endpointslices` (all namespaces). */
export function collectionPath(r: KubeResource): string {
  return r.group === '' ? `/api/${r.version}/${r.plural}` : `/apis/${r.group}/${r.version}/${r.plural}`;
}

/** The path of one object: what rejections name as their "file". */
export function objectPath(r: KubeResource, namespace: string | undefined, name: string): string {
  const base = r.group === '' ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
  return r.namespaced ? `${base}/namespaces/${namespace ?? 'default'}/${r.plural}/${name}` : `${base}/${r.plural}/${name}`;
}

/** The store key of an object: namespace/name, or name for cluster-scoped kinds. */
export function objectKey(object: { metadata?: Record<string, unknown> | undefined }): string {
  const meta = object.metadata ?? {};
  const name = typeof meta.name === 'string' ? meta.name : '';
  const namespace = typeof meta.namespace === 'string' ? meta.namespace : '';
  return namespace === '' ? name : `${namespace}/${name}`;
}

export interface ListPage {
  items: K8sObject[];
  resourceVersion: string;
  /** Set when there are more pages. */
  continueToken: string | undefined;
}

export interface ListParams {
  fieldSelector?: string;
  limit?: number;
  continueToken?: string;
  /** Server-side bound on the request. */
  timeoutSeconds?: number;
}

export type Lister = (params: ListParams) => Promise<ListPage>;

interface AnyList {
  metadata?: { resourceVersion?: string; _continue?: string; continue?: string };
  items?: unknown[];
}

/**
 * Typed lists come back as client-node model instances (Date objects, `_continue`);
 * watch events are plain JSON. Items are turned back into plain JSON, the shape watches
 * deliver, with kind and apiVersion (the API server leaves them out of list items) and
 * without managedFields (large, and nothing here reads them).
 */
export function normalizeObject(r: KubeResource, item: unknown): K8sObject {
  const plain = JSON.parse(JSON.stringify(item)) as K8sObject;
  plain.apiVersion = apiVersionOf(r);
  plain.kind = r.kind;
  if (plain.metadata && typeof plain.metadata === 'object') delete (plain.metadata as Record<string, unknown>).managedFields;
  return plain;
}

function page(r: KubeResource, list: AnyList): ListPage {
  const meta = list.metadata ?? {};
  const token = meta._continue ?? meta.continue;
  return {
    items: (list.items ?? []).map((item) => normalizeObject(r, item)),
    resourceVersion: meta.resourceVersion ?? '',
    continueToken: token === undefined || token === '' ? undefined : token,
  };
}

/** A LIST function for a resource, through client-node's typed (or custom objects) API. */
export function makeLister(kc: KubeConfig, r: KubeResource): Lister {
  const request = (p: ListParams) => ({
    fieldSelector: p.fieldSelector,
    limit: p.limit,
    _continue: p.continueToken,
    timeoutSeconds: p.timeoutSeconds,
  });
  if (r.group === '' && r.version === 'v1') {
    const core = kc.makeApiClient(CoreV1Api);
    switch (r.plural) {
      case 'namespaces':
        return async (p) => page(r, (await core.listNamespace(request(p))) as AnyList);
      case 'pods':
        return async (p) => page(r, (await core.listPodForAllNamespaces(request(p))) as AnyList);
      case 'services':
        return async (p) => page(r, (await core.listServiceForAllNamespaces(request(p))) as AnyList);
      default:
        break;
    }
  }
  if (r.group === 'discovery.k8s.io' && r.version === 'v1' && r.plural === 'endpointslices') {
    const discovery = kc.makeApiClient(DiscoveryV1Api);
    return async (p) => page(r, (await discovery.listEndpointSliceForAllNamespaces(request(p))) as AnyList);
  }
  if (r.group === '') throw new Error(`no lister for core resource ${r.plural}`);
  const custom = kc.makeApiClient(CustomObjectsApi);
  return async (p) => page(r, (await custom.listClusterCustomObject({ group: r.group, version: r.version, plural: r.plural, ...request(p) })) as AnyList);
}

/** The HTTP status of a client-node error (ApiException.code, Watch's statusCode), if any. */
export function httpStatusOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { code?: unknown; statusCode?: unknown };
  if (typeof e.statusCode === 'number') return e.statusCode;
  if (typeof e.code === 'number') return e.code;
  return undefined;
}
