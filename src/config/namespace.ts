import type { NamespaceInfo } from '../mesh/model';
import { checkMode, DNS1123_LABEL, metadata, name } from './core-fields';
import type { CoreKind } from './core-kind';
import type { K8sObject } from './k8s-yaml';
import { objectLabel } from './validation';

/** A v1 Namespace: its name and labels (the mesh mode label). */
export function convertNamespace(object: K8sObject): NamespaceInfo {
  const meta = metadata(object, true);
  name(meta.name, 'metadata.name', DNS1123_LABEL, 63, 'namespace name');
  checkMode(meta.labels, 'metadata.labels');
  return { name: meta.name, labels: meta.labels };
}

export const NAMESPACE_CONVERTER: CoreKind<'namespaces'> = {
  kind: 'Namespace',
  collection: 'namespaces',
  convert: convertNamespace,
  key: (ns) => objectLabel('Namespace', undefined, ns.name),
};
