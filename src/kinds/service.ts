import { SERVICE_CONVERTER } from '../config/service';
import type { ObjectKind } from './object-kind';

export const SERVICE_KIND: ObjectKind = {
  name: 'Service',
  resource: { group: '', version: 'v1', kind: 'Service', plural: 'services', namespaced: true, optional: false, hasStatus: true },
  watched: true,
  slot: 'snapshot',
  core: SERVICE_CONVERTER,
  status: 'none',
};
