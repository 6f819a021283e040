import { parsePeerAuthentications } from '../policy/server/parse-peer-authentication';
import { PEER_AUTHENTICATION_KIND as KIND_NAME, PeerAuthentications, SECURITY_GROUP } from '../policy/server/peer-authentication';
import type { ObjectKind } from './object-kind';

/**
 * Istio's PeerAuthentication (security.istio.io/v1): the mTLS mode of workloads. Parsed
 * by the source, once per update, like TrafficPolicy; the inbound path asks the parsed set
 * for the mode of a pod's port.
 */
export const PEER_AUTHENTICATION_KIND: ObjectKind<PeerAuthentications> = {
  name: KIND_NAME,
  resource: { group: SECURITY_GROUP, version: 'v1', kind: KIND_NAME, plural: 'peerauthentications', namespaced: true, optional: true, hasStatus: true },
  watched: true,
  slot: 'peer-authentication',
  parse: (others) => {
    const { policies, rejected } = parsePeerAuthentications(others);
    return { value: new PeerAuthentications(policies), rejected };
  },
  status: 'accepted-condition',
};
