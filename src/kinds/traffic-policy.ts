import { parseTrafficPolicies } from '../policy/client/parse-traffic-policy';
import { POLICY_GROUP, TRAFFIC_POLICY_KIND as KIND_NAME, type TrafficPolicy } from '../policy/client/traffic-policy';
import type { ObjectKind } from './object-kind';

/** By target Service (namespace/name): the one TrafficPolicy that applies to it. */
export type TrafficPolicies = ReadonlyMap<string, TrafficPolicy>;

/**
 * nodemesh's TrafficPolicy CRD (client-side policy). Parsed by the source, once per
 * update: the Kubernetes source needs the verdicts for the Accepted condition, and the
 * proxy configuration takes the parsed policies from the snapshot.
 */
export const TRAFFIC_POLICY_KIND: ObjectKind<TrafficPolicies> = {
  name: KIND_NAME,
  resource: { group: POLICY_GROUP, version: 'v1alpha1', kind: KIND_NAME, plural: 'trafficpolicies', namespaced: true, optional: true, hasStatus: true },
  watched: true,
  slot: 'policies',
  parse: (others) => {
    const { policies, rejected } = parseTrafficPolicies(others);
    return { value: policies, rejected };
  },
  status: 'accepted-condition',
};
