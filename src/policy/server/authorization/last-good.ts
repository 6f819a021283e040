import type { RejectedObject } from '../../../config/validation';
import type { CompiledPolicy } from './model';
import { AuthorizationPolicies } from './policy-set';

/**
 * An authorization policy whose new version is rejected stays in force as it last was:
 * a typo in an edited DENY policy must not open what it closed, and an edited ALLOW must
 * not start denying everything its typo dropped. A policy that is deleted (neither valid
 * nor rejected any more) goes. The rejection is still reported, with the note that the
 * previous version applies.
 */
export class LastGoodPolicies {
  /** "Kind namespace/name" -> the version last valid. */
  private good = new Map<string, CompiledPolicy>();

  /** The set to enforce, and the policies kept from before because their new version is rejected. */
  apply(valid: AuthorizationPolicies, rejected: readonly RejectedObject[]): { policies: AuthorizationPolicies; kept: CompiledPolicy[] } {
    const now = new Map(valid.all.map((p) => [keyOf(p), p]));
    const kept: CompiledPolicy[] = [];
    for (const r of rejected) {
      const previous = this.good.get(r.object);
      if (previous && !now.has(r.object) && !kept.includes(previous)) kept.push(previous);
    }
    this.good = new Map(now);
    for (const p of kept) this.good.set(keyOf(p), p);
    if (kept.length === 0) return { policies: valid, kept };
    return { policies: new AuthorizationPolicies([...valid.all, ...kept], { rootNamespace: valid.rootNamespace, trustDomain: valid.trustDomain }), kept };
  }
}

/** As objectLabel() names the object in a rejection. */
function keyOf(p: CompiledPolicy): string {
  return `${p.kind} ${p.namespace}/${p.name}`;
}
