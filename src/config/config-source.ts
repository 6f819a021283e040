import type { SourceResult } from './directory-source';

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
