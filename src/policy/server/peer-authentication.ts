import type { PodInfo } from '../../mesh/model';

/**
 * Istio's PeerAuthentication (security.istio.io/v1): which connections a workload
 * accepts. nodemesh's tunnel is always mutual TLS, so the mode decides what happens to
 * plaintext that reaches a pod's inbound capture (15006) and whether sources tunnel at all:
 * - STRICT: plaintext is refused; only the tunnel (or an enrolled pod of the same node,
 *   whose identity the node proxy knows) reaches the pod;
 * - PERMISSIVE (the default): both;
 * - DISABLE: sources send plaintext (no tunnel); plaintext is accepted;
 * - UNSET: inherit from the level above.
 */

export const PEER_AUTHENTICATION_KIND = 'PeerAuthentication';
export const SECURITY_GROUP = 'security.istio.io';
export const PEER_AUTHENTICATION_VERSIONS = ['v1', 'v1beta1'] as const;

export const MTLS_MODES = ['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT'] as const;
export type MtlsMode = (typeof MTLS_MODES)[number];
export type EffectiveMtlsMode = Exclude<MtlsMode, 'UNSET'>;

/**
 * Istio's root namespace: a PeerAuthentication there without a selector applies to the
 * whole mesh. The default; the chart gives the agents its release namespace
 * (`--mesh-root-namespace`).
 */
export const MESH_ROOT_NAMESPACE = 'nodemesh-system';

export interface PeerAuthentication {
  namespace: string;
  name: string;
  file: string;
  /** spec.selector.matchLabels; undefined (or empty in the object) applies to the whole namespace. */
  matchLabels: Readonly<Record<string, string>> | undefined;
  mode: MtlsMode;
  /** spec.portLevelMtls: by the workload's port (the pod's port, not a Service port). */
  portModes: ReadonlyMap<number, MtlsMode>;
  createdMs: number | undefined;
}

/** The mode that applies to one port of one pod, and the policy that set it. */
export interface MtlsDecision {
  mode: EffectiveMtlsMode;
  /** "namespace/name" of the policy whose setting applied; undefined for the default. */
  policy: string | undefined;
}

/**
 * The valid PeerAuthentications of a configuration, by namespace, resolved as Istio
 * does: the workload's policy (selector), then its namespace's (no selector), then the
 * mesh's (root namespace, no selector); at each level the oldest applies; a port of the
 * workload policy's portLevelMtls overrides its mode; UNSET defers to the level above;
 * PERMISSIVE when nothing is set.
 */
export class PeerAuthentications {
  private readonly byNamespace = new Map<string, PeerAuthentication[]>();

  /** `policies` oldest first (the parser sorts them). */
  constructor(private readonly policies: readonly PeerAuthentication[], private readonly rootNamespace = MESH_ROOT_NAMESPACE) {
    for (const p of policies) {
      const list = this.byNamespace.get(p.namespace) ?? [];
      list.push(p);
      this.byNamespace.set(p.namespace, list);
    }
  }

  /** The same policies with another mesh root namespace. */
  withRootNamespace(rootNamespace: string): PeerAuthentications {
    return rootNamespace === this.rootNamespace ? this : new PeerAuthentications(this.policies, rootNamespace);
  }

  get size(): number {
    let n = 0;
    for (const list of this.byNamespace.values()) n += list.length;
    return n;
  }

  modeFor(pod: Pick<PodInfo, 'namespace' | 'labels'>, port: number): MtlsDecision {
    const own = this.byNamespace.get(pod.namespace) ?? [];
    const workload = own.find((p) => p.matchLabels !== undefined && matches(p.matchLabels, pod.labels));
    const namespaceWide = own.find((p) => p.matchLabels === undefined);
    const meshWide = (this.byNamespace.get(this.rootNamespace) ?? []).find((p) => p.matchLabels === undefined);
    let decision: MtlsDecision = { mode: 'PERMISSIVE', policy: undefined };
    for (const [policy, mode] of [
      [meshWide, meshWide?.mode],
      [namespaceWide, namespaceWide?.mode],
      [workload, workload?.mode],
      [workload, workload?.portModes.get(port)],
    ] as const) {
      if (policy && mode !== undefined && mode !== 'UNSET') decision = { mode, policy: `${policy.namespace}/${policy.name}` };
    }
    return decision;
  }
}

function matches(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(selector)) if (labels[k] !== v) return false;
  return true;
}
