import { MESH_MEMBER_API_VERSION, MESH_MEMBER_KIND as KIND_NAME, podOfMember } from '../config/mesh-member';
import { objectLabel, rejection, FieldError, type RejectedObject } from '../config/validation';
import type { PodInfo } from '../mesh/model';
import type { ObjectKind } from './object-kind';

/**
 * MeshMember: the enrolled pods of other nodes, as their agents publish them. The
 * Kubernetes source adds them to the snapshot's pods (a Pod object of the same name, this
 * node's, wins), so that a source here tunnels to them and checks their identity.
 */
export const MESH_MEMBER_KIND: ObjectKind<PodInfo[]> = {
  name: KIND_NAME,
  resource: { group: 'nodemesh.dev', version: 'v1alpha1', kind: KIND_NAME, plural: 'meshmembers', namespaced: true, optional: true, hasStatus: false },
  watched: true,
  slot: 'members',
  parse: (others) => {
    const pods: PodInfo[] = [];
    const rejected: RejectedObject[] = [];
    for (const o of others) {
      if (o.apiVersion !== MESH_MEMBER_API_VERSION) {
        rejected.push(rejection(o.file, objectLabel(KIND_NAME, o.namespace, o.name), `"${o.apiVersion}" is not served; use ${MESH_MEMBER_API_VERSION}`, 'apiVersion'));
        continue;
      }
      try {
        pods.push(podOfMember(o.object));
      } catch (err) {
        if (!(err instanceof FieldError)) throw err;
        rejected.push(rejection(o.file, objectLabel(KIND_NAME, o.namespace, o.name), err.problem, err.path));
      }
    }
    return { value: pods, rejected };
  },
  status: 'none',
};
