import { isDeepStrictEqual } from 'node:util';
import { sameItems } from '../util/same-items';
import type { EndpointSliceInfo, NamespaceInfo, PodInfo, ServiceInfo } from '../mesh/model';
import type { OtherObject } from './objects';
import type { ParsedKinds } from './snapshot';
import type { RejectedObject } from './validation';

/**
 * Where the mesh configuration comes from: a YAML directory or the Kubernetes API. The
 * runtime (agent and sidecar alike) loads the first view, then applies every change.
 */
export interface ConfigSource {
  /** Resolves with the first complete view (for Kubernetes: after the first full sync). */
  load(): Promise<SourceResult>;
  watch(onChange: (result: SourceResult) => void, onError?: (err: unknown) => void): void;
  close(): void;
}

/** One complete view of the configuration, as a source gives it (first load and every change). */
export interface SourceResult {
  namespaces: NamespaceInfo[];
  pods: PodInfo[];
  services: ServiceInfo[];
  others: OtherObject[];
  rejected: RejectedObject[];
  /** The files read, absolute paths in name order. */
  files: string[];
  /** discovery.k8s.io EndpointSlices (the Kubernetes source; YAML may carry them too). */
  endpointSlices?: EndpointSliceInfo[];
  /** Set by the Kubernetes source: see SnapshotInput.endpointsFromSlicesOnly. */
  endpointsFromSlicesOnly?: boolean;
  /** Kinds the source parsed already (see SnapshotInput.parsed). */
  parsed?: ParsedKinds;
}

/**
 * The same result, by reference: sources keep every unchanged object (ObjectConverter,
 * KindParser), so a change that leaves the objects as they were gives equal lists of the
 * same objects. How a source decides whether an update is worth reporting, without
 * serialising the whole cluster.
 */
export function sameSourceResult(a: SourceResult, b: SourceResult): boolean {
  if (!sameItems(a.namespaces, b.namespaces) || !sameItems(a.pods, b.pods) || !sameItems(a.services, b.services) || !sameItems(a.others, b.others)) return false;
  if (!sameItems(a.endpointSlices, b.endpointSlices) || a.endpointsFromSlicesOnly !== b.endpointsFromSlicesOnly || !sameItems(a.files, b.files)) return false;
  const pa = a.parsed ?? {};
  const pb = b.parsed ?? {};
  const kinds = Object.keys(pa);
  if (kinds.length !== Object.keys(pb).length || kinds.some((k) => pa[k] !== pb[k])) return false;
  return isDeepStrictEqual(a.rejected, b.rejected);
}
