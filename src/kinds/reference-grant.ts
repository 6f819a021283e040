import { GATEWAY_GROUP } from '../routing';
import type { ObjectKind } from './object-kind';

/**
 * Gateway API ReferenceGrants: read by the route compiler (routing/reference-grant.ts) to
 * allow cross-namespace backends. Only the directory source has them today: the
 * Kubernetes source does not watch them (nor does the chart's RBAC allow it), so on a
 * cluster a cross-namespace backend stays unresolved. Watching them is `watched: true`
 * here plus the RBAC rule.
 */
export const REFERENCE_GRANT_KIND: ObjectKind = {
  name: 'ReferenceGrant',
  resource: { group: GATEWAY_GROUP, version: 'v1beta1', kind: 'ReferenceGrant', plural: 'referencegrants', namespaced: true, optional: true, hasStatus: false },
  watched: false,
  slot: 'routes',
  status: 'none',
};
