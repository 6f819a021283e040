import type { MeshSnapshot } from '../config/snapshot';
import type { RejectedObject } from '../config/validation';
import { RouteCompiler, type RouteStatus, type RouteTable } from '../routing';
import { isOfKind, type ObjectKind } from './object-kind';
import { KINDS, KindParser } from './registry';
import type { AuthorizationPolicies } from '../policy/server/authorization/policy-set';
import type { PeerAuthentications } from '../policy/server/peer-authentication';
import { AUTHORIZATION_POLICY_KIND } from './authorization-policy';
import { MESH_AUTHORIZATION_POLICY_KIND } from './mesh-authorization-policy';
import { PEER_AUTHENTICATION_KIND } from './peer-authentication';
import { TRAFFIC_POLICY_KIND, type TrafficPolicies } from './traffic-policy';

/**
 * The slots of the proxy configuration that the kinds fill (see ConfigSlot), built once
 * per snapshot by src/proxy/proxy-config.ts. A kind its source parsed already
 * (MeshSnapshot.parsed) is taken from there, and its rejections were the source's to
 * report; otherwise (the directory source) it is parsed here, once, and its rejections
 * are this configuration's.
 */
export interface ConfigSlots {
  routes: RouteTable;
  policies: TrafficPolicies;
  peerAuthentication: PeerAuthentications;
  /** Istio's AuthorizationPolicies and GEP-3779's XAuthorizationPolicies, as one set. */
  authorization: AuthorizationPolicies;
  /** Objects that do not apply: routes first, then policies, PeerAuthentications, authorization policies. */
  rejected: RejectedObject[];
  /** Routes that apply with a reference that does not resolve. */
  warnings: RejectedObject[];
  /** Each route's status.parents (Accepted, ResolvedRefs), as the Kubernetes source writes them. */
  routeStatuses: RouteStatus[];
}

/** A kind's parsed value: from the snapshot when its source parsed it, else parsed now. */
export function parsedValue<T>(kind: ObjectKind<T>, snapshot: MeshSnapshot, parser = new KindParser()): { value: T; rejected: readonly RejectedObject[] } {
  if (Object.prototype.hasOwnProperty.call(snapshot.parsed, kind.name)) return { value: snapshot.parsed[kind.name] as T, rejected: [] };
  return parser.parseKind(kind, snapshot.others);
}

export function buildConfigSlots(snapshot: MeshSnapshot, kinds: readonly ObjectKind[] = KINDS): ConfigSlots {
  return new ConfigSlotsBuilder(kinds).build(snapshot);
}

/**
 * buildConfigSlots once per snapshot of one source: routes whose objects and Services did
 * not change are not compiled again (RouteCompiler), kinds whose objects did not change
 * keep their parsed value (KindParser), so a change costs what it touches.
 */
export class ConfigSlotsBuilder {
  private readonly routes = new RouteCompiler();
  private readonly parser: KindParser;

  constructor(private readonly kinds: readonly ObjectKind[] = KINDS) {
    this.parser = new KindParser(kinds);
  }

  build(snapshot: MeshSnapshot): ConfigSlots {
    // Routes: one compile over the objects of every 'routes' kind, against the snapshot's
    // Services (backends, ports and sectionNames resolve against them).
    const routeKinds = this.kinds.filter((k) => k.slot === 'routes');
    const routeObjects = snapshot.others.filter((o) => routeKinds.some((k) => isOfKind(k, o)));
    const { table, rejected: routeRejected, warnings, statuses: routeStatuses } = this.routes.compile(routeObjects, snapshot.services);
    const policies = parsedValue(TRAFFIC_POLICY_KIND, snapshot, this.parser);
    const peerAuthentication = parsedValue(PEER_AUTHENTICATION_KIND, snapshot, this.parser);
    const istioAuthorization = parsedValue(AUTHORIZATION_POLICY_KIND, snapshot, this.parser);
    const meshAuthorization = parsedValue(MESH_AUTHORIZATION_POLICY_KIND, snapshot, this.parser);
    return {
      routes: table,
      policies: policies.value,
      peerAuthentication: peerAuthentication.value,
      authorization: istioAuthorization.value.concat(meshAuthorization.value),
      rejected: [...routeRejected, ...policies.rejected, ...peerAuthentication.rejected, ...istioAuthorization.rejected, ...meshAuthorization.rejected],
      warnings,
      routeStatuses,
    };
  }
}
