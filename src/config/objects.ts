import { isDeepStrictEqual } from 'node:util';
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

/** What one raw object became (cached per object by ObjectConverter). */
type Converted = { key: string; collection: CoreCollection | 'others'; value: ConvertedObjects[CoreCollection][number] | OtherObject };
type Outcome = Converted | { rejected: RejectedObject };

/**
 * Converts raw objects (from one or many files). Rejects bad objects one by one and
 * duplicates (same kind, namespace and name: the first one read wins). `kinds` are the
 * kinds converted into the mesh model; every other object goes to `others`.
 */
export function convertObjects(raws: readonly RawObject[], kinds: readonly CoreKind[] = CORE_KINDS): ConvertedObjects {
  return new ObjectConverter(kinds).convert(raws);
}

/**
 * convertObjects for a source that converts its objects again after every change: an
 * object it saw before (the same K8sObject reference) is not converted again, and a
 * changed object that converts to the same value as the last one with its key gives that
 * same value back (by reference). So the results of two updates share every unchanged
 * object, which is what lets MeshSnapshot and the proxy configuration do work in
 * proportion to the change. A full conversion is the same code with an empty cache.
 */
export class ObjectConverter {
  private readonly outcomes = new WeakMap<K8sObject, { file: string; outcome: Outcome }>();
  /** key -> the last outcome with that key: a re-read, unchanged object keeps its value. */
  private readonly last = new Map<string, Converted>();

  constructor(private readonly kinds: readonly CoreKind[] = CORE_KINDS) {}

  convert(raws: readonly RawObject[]): ConvertedObjects {
    const out: ConvertedObjects = { namespaces: [], pods: [], services: [], endpointSlices: [], others: [], rejected: [] };
    const seen = new Map<string, string>();
    for (const raw of raws) {
      const outcome = this.outcome(raw);
      if ('rejected' in outcome) {
        out.rejected.push(outcome.rejected);
        continue;
      }
      const first = seen.get(outcome.key);
      if (first !== undefined) {
        out.rejected.push(rejection(raw.file, describeRaw(raw), `duplicate: the same object is already defined in ${first} (the first one read wins)`));
        continue;
      }
      seen.set(outcome.key, raw.file);
      (out[outcome.collection] as Array<Converted['value']>).push(outcome.value);
    }
    if (this.last.size > seen.size) for (const key of [...this.last.keys()]) if (!seen.has(key)) this.last.delete(key);
    return out;
  }

  private outcome(raw: RawObject): Outcome {
    const cached = this.outcomes.get(raw.object);
    // The file is part of the outcome (rejections and others name it); the same object in another file is converted again.
    if (cached !== undefined && cached.file === raw.file) return cached.outcome;
    let outcome: Outcome;
    try {
      let converted: Converted;
      const core = coreKindOf(this.kinds, raw.object);
      if (core) {
        const value = core.convert(raw.object);
        converted = { key: core.key(value), collection: core.collection, value };
      } else {
        const other = convertOther(raw);
        converted = { key: `${other.apiVersion.split('/')[0]}:${objectLabel(other.kind, other.namespace, other.name)}`, collection: 'others', value: other };
      }
      const previous = this.last.get(converted.key);
      if (previous !== undefined && previous.collection === converted.collection && isDeepStrictEqual(previous.value, converted.value)) converted = previous;
      else this.last.set(converted.key, converted);
      outcome = converted;
    } catch (err) {
      if (err instanceof FieldError) outcome = { rejected: rejection(raw.file, describeRaw(raw), err.problem, err.path) };
      else throw err;
    }
    this.outcomes.set(raw.object, { file: raw.file, outcome });
    return outcome;
  }
}
