import {
  MESH_AUTHORIZATION_GROUP,
  MESH_AUTHORIZATION_KIND as KIND_NAME,
  MESH_AUTHORIZATION_VERSION,
  parseMeshAuthorizationPolicies,
} from '../policy/server/authorization/parse-mesh-authorization-policy';
import { AuthorizationPolicies } from '../policy/server/authorization/policy-set';
import type { ObjectKind } from './object-kind';

/**
 * Gateway API's mesh authorization policy (GEP-3779, experimental:
 * gateway.networking.x-k8s.io/v1alpha1 XAuthorizationPolicy): ALLOW by service account,
 * SPIFFE ID and port. Compiled into the same model as Istio's AuthorizationPolicy and
 * evaluated with it (the `authorization` slot).
 */
export const MESH_AUTHORIZATION_POLICY_KIND: ObjectKind<AuthorizationPolicies> = {
  name: KIND_NAME,
  resource: { group: MESH_AUTHORIZATION_GROUP, version: MESH_AUTHORIZATION_VERSION, kind: KIND_NAME, plural: 'xauthorizationpolicies', namespaced: true, optional: true, hasStatus: true },
  watched: true,
  slot: 'authorization',
  parse: (others) => {
    const { policies, rejected } = parseMeshAuthorizationPolicies(others);
    return { value: new AuthorizationPolicies(policies), rejected };
  },
  status: 'accepted-condition',
};
