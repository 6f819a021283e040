import { NAMESPACE_CONVERTER } from '../config/namespace';
import type { ObjectKind } from './object-kind';

export const NAMESPACE_KIND: ObjectKind = {
  name: 'Namespace',
  resource: { group: '', version: 'v1', kind: 'Namespace', plural: 'namespaces', namespaced: false, optional: false, hasStatus: true },
  watched: true,
  slot: 'snapshot',
  core: NAMESPACE_CONVERTER,
  status: 'none',
};
