import type { CoreKind } from '../config/core-kind';
import type { OtherObject } from '../config/objects';
import type { RejectedObject } from '../config/validation';

/**
 * One kind of configuration object nodemesh reads, in one place: where the Kubernetes API
 * serves it, how its objects are parsed, where the result goes in the proxy
 * configuration, and how nodemesh tells the object's owner what it made of it. The
 * Kubernetes source, the directory source and the proxy configuration all read these
 * entries (registry.ts), so a new kind costs one file here and one line in the registry.
 */

/** Where the API serves a kind (kube/resources.ts builds REST paths and listers from it). */
export interface ApiResource {
  /** '' for the core group. */
  group: string;
  version: string;
  kind: string;
  plural: string;
  namespaced: boolean;
  /**
   * A custom resource that may not be installed (Gateway API, nodemesh CRDs): a 404 means
   * "none of these", not an error, and the agent checks again later.
   */
  optional: boolean;
  /** The resource has a status (for Pods, configuration: their IPs; for the rest, written by others or by nodemesh). */
  hasStatus: boolean;
}

/** What a kind's parser made of the objects of one update. */
export interface ParsedKind<T> {
  /** What its configuration slot receives. */
  value: T;
  /** Objects that do not apply, with the field to fix. */
  rejected: RejectedObject[];
}

/**
 * Where the parsed objects go in the proxy configuration (src/proxy/proxy-config.ts):
 * - `snapshot`: the mesh model of MeshSnapshot (Namespaces, Pods, Services, endpoints);
 * - `routes`: the route table (routing/), compiled against the snapshot's Services;
 * - `policies`: the client-side policy registry (policy/client/), by target Service;
 * - `peer-authentication`: the mTLS modes of workloads (policy/server/);
 * - `authorization`: authorization rules, Istio's and GEP-3779's compiled into one set
 *   (policy/server/authorization/);
 * - `members`: pods of other nodes, which the Kubernetes source adds to the snapshot's pods.
 */
export type ConfigSlot = 'snapshot' | 'routes' | 'policies' | 'peer-authentication' | 'authorization' | 'members';

/**
 * How the owner of an object hears what nodemesh made of it.
 * - `accepted-condition`: status.conditions[type=Accepted] through the status
 *   subresource, and a Warning Event for a rejection (kube/status-writer.ts).
 * - `route-parents`: Gateway API route status, one status.parents entry per Service
 *   parentRef with Accepted and ResolvedRefs (routing/route-status.ts), no Events.
 * - `none`: nothing is written (rejections are logged and shown in /debug/config).
 */
export type StatusReport = 'accepted-condition' | 'route-parents' | 'none';

export interface ObjectKind<T = unknown> {
  /** The kind's name ("TrafficPolicy"): its key in the registry and in MeshSnapshot.parsed. */
  readonly name: string;
  readonly resource: ApiResource;
  /** Listed and watched by the Kubernetes source. */
  readonly watched: boolean;
  readonly slot: ConfigSlot;
  /** Core kinds: converted one object at a time into the mesh model (config/objects.ts). */
  readonly core?: CoreKind;
  /**
   * Kinds parsed as a set by the source, once per update, without the rest of the
   * snapshot; the value travels to the proxy configuration in MeshSnapshot.parsed.
   */
  readonly parse?: (others: readonly OtherObject[]) => ParsedKind<T>;
  readonly status: StatusReport;
}

/** Does this OtherObject belong to the kind (its group and kind; any version)? */
export function isOfKind(kind: ObjectKind, other: Pick<OtherObject, 'apiVersion' | 'kind'>): boolean {
  const slash = other.apiVersion.indexOf('/');
  const group = slash < 0 ? '' : other.apiVersion.slice(0, slash);
  return other.kind === kind.resource.kind && group === kind.resource.group;
}
