import type { EndpointSliceInfo, NamespaceInfo, PodInfo, ServiceInfo } from '../mesh/model';
import { CLUSTER_SCOPED, describeRaw, metadata, read } from './core-fields';
import type { CoreCollection, CoreKind } from './core-kind';
import { ENDPOINT_SLICE_CONVERTER } from './endpoint-slice';
import type { K8sObject, RawObject } from './k8s-yaml';
import { NAMESPACE_CONVERTER } from './namespace';
import { POD_CONVERTER } from './pod';
import { SERVICE_CONVERTER } from './service';
import { FieldError, objectLabel, rejection, type RejectedObject } from './validation';

/**
 * Raw Kubernetes objects into the mesh model: the core kinds (Namespace, Pod, Service,
 * discovery.k8s.io/v1 EndpointSlice, one file each) are converted and checked; a bad
 * object is rejected with a reason naming the file, the object and the field path, and
 * the other objects of the file still apply. Objects of other kinds (HTTPRoute,
 * nodemesh's CRDs, Node) are kept as they are in `others`, for their own parsers.
 */

/** An object of a kind this module does not convert, kept for later consumers. */
export interface OtherObject {
  file: string;
  apiVersion: string;
  kind: string;
  /** undefined for cluster-scoped kinds (Node, CRDs ...) when the object sets none. */
  namespace: string | undefined;
  name: string;
  object: K8sObject;
}

export interface ConvertedObjects {
  namespaces: NamespaceInfo[];
  pods: PodInfo[];
  services: ServiceInfo[];
  /** discovery.k8s.io/v1 EndpointSlices (a cluster's endpoints; the YAML source may have some too). */
  endpointSlices: EndpointSliceInfo[];
  others: OtherObject[];
  rejected: RejectedObject[];
}

/** The core kinds, for callers that are not handed the registry's list (src/kinds names the same). */
export const CORE_KINDS: readonly CoreKind[] = [NAMESPACE_CONVERTER, POD_CONVERTER, SERVICE_CONVERTER, ENDPOINT_SLICE_CONVERTER];

function convertOther(raw: RawObject): OtherObject {
  const { object } = raw;
  const clusterScoped = CLUSTER_SCOPED.has(object.kind);
  const meta = metadata(object, clusterScoped);
  const apiVersion = read.string(object.apiVersion, 'apiVersion') ?? '';
  return { file: raw.file, apiVersion, kind: object.kind, namespace: meta.namespace, name: meta.name, object };
}

function coreKindOf(kinds: readonly CoreKind[], object: K8sObject): CoreKind | undefined {
  return kinds.find((k) => k.kind === object.kind && (k.apiVersion === undefined || k.apiVersion === object.apiVersion));
}

/**
 * Converts raw objects (from one or many files). Rejects bad objects one by one and
 * duplicates (same kind, namespace and name: the first one read wins). `kinds` are the
 * kinds converted into the mesh model; every other object goes to `others`.
 */
export function convertObjects(raws: readonly RawObject[], kinds: readonly CoreKind[] = CORE_KINDS): ConvertedObjects {
  const out: ConvertedObjects = { namespaces: [], pods: [], services: [], endpointSlices: [], others: [], rejected: [] };
  const seen = new Map<string, string>();
  for (const raw of raws) {
    const label = describeRaw(raw);
    try {
      let key: string;
      let add: () => void;
      const core = coreKindOf(kinds, raw.object);
      if (core) {
        const value = core.convert(raw.object);
        key = core.key(value);
        add = () => (out[core.collection] as Array<ConvertedObjects[CoreCollection][number]>).push(value);
      } else {
        const other = convertOther(raw);
        key = `${other.apiVersion.split('/')[0]}:${objectLabel(other.kind, other.namespace, other.name)}`;
        add = () => out.others.push(other);
      }
      const first = seen.get(key);
      if (first !== undefined) {
        out.rejected.push(rejection(raw.file, label, `duplicate: the same object is already defined in ${first} (the first one read wins)`));
        continue;
      }
      seen.set(key, raw.file);
      add();
    } catch (err) {
      if (err instanceof FieldError) out.rejected.push(rejection(raw.file, label, err.problem, err.path));
      else throw err;
    }
  }
  return out;
}
