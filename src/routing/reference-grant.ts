import type { OtherObject } from '../config/objects';
import { isRecord } from '../config/validation';

/**
 * Gateway API ReferenceGrants: which routes of another namespace may send to a namespace's
 * Services. Read leniently (a malformed grant grants nothing; nothing is rejected), as the
 * grant belongs to the target namespace's owner, not to the route's.
 */

export const GATEWAY_GROUP = 'gateway.networking.k8s.io';

export interface Grant {
  namespace: string;
  from: Array<{ group: string; kind: string; namespace: string }>;
  to: Array<{ group: string; kind: string; name: string | undefined }>;
}

export function readGrants(others: readonly OtherObject[]): Grant[] {
  const grants: Grant[] = [];
  for (const other of others) {
    if (other.kind !== 'ReferenceGrant' || apiGroup(other.apiVersion) !== GATEWAY_GROUP) continue;
    const spec = isRecord(other.object.spec) ? other.object.spec : {};
    const from = (Array.isArray(spec.from) ? spec.from : []).filter(isRecord).map((f) => ({
      group: typeof f.group === 'string' ? f.group : '',
      kind: typeof f.kind === 'string' ? f.kind : '',
      namespace: typeof f.namespace === 'string' ? f.namespace : '',
    }));
    const to = (Array.isArray(spec.to) ? spec.to : []).filter(isRecord).map((t) => ({
      group: typeof t.group === 'string' ? t.group : '',
      kind: typeof t.kind === 'string' ? t.kind : '',
      name: typeof t.name === 'string' && t.name !== '' ? t.name : undefined,
    }));
    grants.push({ namespace: other.namespace ?? 'default', from, to });
  }
  return grants;
}

export function granted(grants: readonly Grant[], routeKind: string, routeNamespace: string, targetNamespace: string, serviceName: string): boolean {
  return grants.some(
    (g) =>
      g.namespace === targetNamespace &&
      g.from.some((f) => f.group === GATEWAY_GROUP && f.kind === routeKind && f.namespace === routeNamespace) &&
      g.to.some((t) => (t.group === '' || t.group === 'core') && t.kind === 'Service' && (t.name === undefined || t.name === serviceName)),
  );
}

export function apiGroup(apiVersion: string): string {
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? '' : apiVersion.slice(0, slash);
}
