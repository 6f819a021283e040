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
