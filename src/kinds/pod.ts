import { POD_CONVERTER } from '../config/pod';
import type { ObjectKind } from './object-kind';

/** Pods: the Kubernetes source watches only this node's (kube-source.ts adds the field selector). */
export const POD_KIND: ObjectKind = {
  name: 'Pod',
  resource: { group: '', version: 'v1', kind: 'Pod', plural: 'pods', namespaced: true, optional: false, hasStatus: true },
  watched: true,
  slot: 'snapshot',
  core: POD_CONVERTER,
  status: 'none',
};
