import type { MeshSnapshot } from '../config/snapshot';
import type { RejectedObject } from '../config/validation';
import { compileRoutes, type RouteTable } from '../routing';
import { isOfKind, type ObjectKind } from './object-kind';
import { KINDS } from './registry';
import type { PeerAuthentications } from '../policy/server/peer-authentication';
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
  /** Objects that do not apply: routes first, then policies, then PeerAuthentications. */
  rejected: RejectedObject[];
  /** Routes that apply with a reference that does not resolve. */
  warnings: RejectedObject[];
}

/** A kind's parsed value: from the snapshot when its source parsed it, else parsed now. */
export function parsedValue<T>(kind: ObjectKind<T>, snapshot: MeshSnapshot): { value: T; rejected: RejectedObject[] } {
  if (Object.prototype.hasOwnProperty.call(snapshot.parsed, kind.name)) return { value: snapshot.parsed[kind.name] as T, rejected: [] };
  if (!kind.parse) throw new Error(`kind ${kind.name} has no parser`);
  return kind.parse(snapshot.others.filter((o) => isOfKind(kind as ObjectKind, o)));
}

export function buildConfigSlots(snapshot: MeshSnapshot, kinds: readonly ObjectKind[] = KINDS): ConfigSlots {
  // Routes, ReferenceGrants: one compile over the objects of every 'routes' kind, since
  // grants and backends resolve across them and against the snapshot's Services.
  const routeKinds = kinds.filter((k) => k.slot === 'routes');
  const routeObjects = snapshot.others.filter((o) => routeKinds.some((k) => isOfKind(k, o)));
  const { table, rejected: routeRejected, warnings } = compileRoutes(routeObjects, snapshot.services);
  const policies = parsedValue(TRAFFIC_POLICY_KIND, snapshot);
  const peerAuthentication = parsedValue(PEER_AUTHENTICATION_KIND, snapshot);
  return {
    routes: table,
    policies: policies.value,
    peerAuthentication: peerAuthentication.value,
    rejected: [...routeRejected, ...policies.rejected, ...peerAuthentication.rejected],
    warnings,
  };
}
