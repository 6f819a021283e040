import { DEFAULT_TRUST_DOMAIN } from '../../../mesh/workload-identity';
import { olderThan } from '../../../config/object-age';
import { MESH_ROOT_NAMESPACE } from '../peer-authentication';
import { selectorMatches } from './label-selector';
import type { CompiledPolicy } from './model';
import type { AuthzDestination } from './request';

/**
 * The valid authorization policies of a configuration (both APIs), indexed by namespace,
 * with the two mesh settings evaluation depends on: the root namespace (where an Istio
 * policy without a selector is mesh-wide, and a selector reaches every namespace) and the
 * trust domain (whose service accounts `serviceAccounts` / GEP-3779 ServiceAccount sources
 * name). Unlike PeerAuthentication, every policy that applies counts: nothing is "the
 * oldest wins". They are kept oldest first so that the policy a decision names is stable.
 */
export class AuthorizationPolicies {
  private readonly byNamespace = new Map<string, CompiledPolicy[]>();
  readonly rootNamespace: string;
  readonly trustDomain: string;

  constructor(
    private readonly policies: readonly CompiledPolicy[],
    settings: { rootNamespace?: string; trustDomain?: string } = {},
  ) {
    this.rootNamespace = settings.rootNamespace ?? MESH_ROOT_NAMESPACE;
    this.trustDomain = settings.trustDomain ?? DEFAULT_TRUST_DOMAIN;
    const sorted = [...policies].sort((a, b) => (olderThan(a, b) ? -1 : olderThan(b, a) ? 1 : 0));
    for (const p of sorted) {
      const list = this.byNamespace.get(p.namespace) ?? [];
      list.push(p);
      this.byNamespace.set(p.namespace, list);
    }
  }

  /** The same policies with other mesh settings (the agent's --mesh-root-namespace and --trust-domain). */
  withMeshSettings(settings: { rootNamespace?: string; trustDomain?: string }): AuthorizationPolicies {
    const rootNamespace = settings.rootNamespace ?? this.rootNamespace;
    const trustDomain = settings.trustDomain ?? this.trustDomain;
    if (rootNamespace === this.rootNamespace && trustDomain === this.trustDomain) return this;
    return new AuthorizationPolicies(this.policies, { rootNamespace, trustDomain });
  }

  /** Both sets' policies, with this one's settings. */
  concat(other: AuthorizationPolicies): AuthorizationPolicies {
    return new AuthorizationPolicies([...this.policies, ...other.policies], { rootNamespace: this.rootNamespace, trustDomain: this.trustDomain });
  }

  get size(): number {
    return this.policies.length;
  }

  get all(): readonly CompiledPolicy[] {
    return this.policies;
  }

  /** The policies that apply to a workload: its namespace's that select it, then the root namespace's mesh-wide ones. */
  applicableTo(destination: AuthzDestination): CompiledPolicy[] {
    const out: CompiledPolicy[] = [];
    for (const p of this.byNamespace.get(destination.namespace) ?? []) if (appliesInOwnNamespace(p, destination)) out.push(p);
    if (destination.namespace !== this.rootNamespace) {
      for (const p of this.byNamespace.get(this.rootNamespace) ?? []) if (appliesMeshWide(p, destination)) out.push(p);
    }
    return out;
  }
}

function appliesInOwnNamespace(p: CompiledPolicy, d: AuthzDestination): boolean {
  switch (p.scope.kind) {
    case 'all':
      return true;
    case 'selector':
      return selectorMatches(p.scope.selector, d.labels);
    case 'services':
      return d.serviceNames !== undefined && p.scope.names.some((n) => d.serviceNames!.has(n));
  }
}

/** A root-namespace policy for a workload of another namespace: Istio's `all` and `selector` only. */
function appliesMeshWide(p: CompiledPolicy, d: AuthzDestination): boolean {
  switch (p.scope.kind) {
    case 'all':
      return p.scope.rootNamespaceIsMesh;
    case 'selector':
      return p.scope.rootNamespaceIsMesh && selectorMatches(p.scope.selector, d.labels);
    case 'services':
      return false;
  }
}
