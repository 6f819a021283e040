import { ENDPOINT_SLICE_CONVERTER } from '../config/endpoint-slice';
import type { ObjectKind } from './object-kind';

export const ENDPOINT_SLICE_KIND: ObjectKind = {
  name: 'EndpointSlice',
  resource: { group: 'discovery.k8s.io', version: 'v1', kind: 'EndpointSlice', plural: 'endpointslices', namespaced: true, optional: false, hasStatus: false },
  watched: true,
  slot: 'snapshot',
  core: ENDPOINT_SLICE_CONVERTER,
  status: 'none',
};
