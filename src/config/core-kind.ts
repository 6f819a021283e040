import type { EndpointSliceInfo, NamespaceInfo, PodInfo, ServiceInfo } from '../mesh/model';
import type { K8sObject } from './k8s-yaml';

/**
 * A kind that convertObjects turns into the mesh model, one object at a time: its
 * converter and the list of ConvertedObjects it fills. The registry of object kinds
 * (src/kinds) names these; config sits below it, so the registry hands them in.
 */

export interface CoreCollections {
  namespaces: NamespaceInfo;
  pods: PodInfo;
  services: ServiceInfo;
  endpointSlices: EndpointSliceInfo;
}

export type CoreCollection = keyof CoreCollections;

export interface CoreKind<C extends CoreCollection = CoreCollection> {
  kind: string;
  /** Objects of this kind with another apiVersion are not converted but kept in `others`. */
  apiVersion?: string;
  collection: C;
  /** Throws FieldError (config/validation) for a rejection. */
  convert(object: K8sObject): CoreCollections[C];
  /** Objects with the same key are duplicates: the first one read wins. */
  key(value: CoreCollections[C]): string;
}
