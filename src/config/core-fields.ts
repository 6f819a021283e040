import { createHash } from 'node:crypto';
import { MESH_MODES, MODE_KEY } from '../mesh/model';
import { canonicalIP } from './ip';
import type { K8sObject, RawObject } from './k8s-yaml';
import { FieldError, FieldReader, isRecord, objectLabel } from './validation';

/**
 * Field readers for Kubernetes' core objects (Namespace, Pod, Service, EndpointSlice),
 * with the checks the API server would have made: the embedded source has no API server
 * in front of it. Messages add "quote it" hints: these fields are strings that YAML
 * readily turns into numbers, booleans or timestamps.
 */

export const read = new FieldReader({ quoteHints: true });

export const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
export const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const IANA_SVC_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const PROTOCOLS = ['TCP', 'UDP', 'SCTP'];

export function name(value: unknown, path: string, pattern: RegExp, maxLength: number, what: string): string {
  const text = read.requiredString(value, path);
  if (text.length > maxLength || !pattern.test(text)) {
    throw new FieldError(path, `"${text}" is not a valid ${what} (lower-case letters, digits and '-', at most ${maxLength} characters)`);
  }
  return text;
}

/** A map of string values (labels, annotations, selectors). */
export function stringMap(value: unknown, path: string): Record<string, string> {
  const record = read.record(value, path);
  const out: Record<string, string> = {};
  if (!record) return out;
  for (const [key, entry] of Object.entries(record)) {
    if (key === '') throw new FieldError(path, 'keys must not be empty');
    if (typeof entry !== 'string') throw new FieldError(`${path}["${key}"]`, `must be a string, got ${read.describe(entry)}`);
    out[key] = entry;
  }
  return out;
}

export function checkMode(map: Record<string, string>, path: string): void {
  const mode = map[MODE_KEY];
  if (mode !== undefined && !(MESH_MODES as readonly string[]).includes(mode)) {
    throw new FieldError(`${path}["${MODE_KEY}"]`, `"${mode}" is not a mesh mode (use one of ${MESH_MODES.join(', ')})`);
  }
}

export function ip(value: unknown, path: string): string {
  const text = read.requiredString(value, path);
  const canonical = canonicalIP(text);
  if (canonical === undefined || text.includes('%')) throw new FieldError(path, `"${text}" is not a valid IP address`);
  return canonical;
}

export function portNumber(value: unknown, path: string): number {
  if (value === undefined || value === null) throw new FieldError(path, 'required (a port number, 1-65535)');
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) {
    throw new FieldError(path, `must be a port number (1-65535), got ${read.describe(value)}`);
  }
  return value;
}

export function protocol(value: unknown, path: string): string {
  const text = read.string(value, path) ?? 'TCP';
  if (!PROTOCOLS.includes(text)) throw new FieldError(path, `"${text}" is not a protocol (use TCP, UDP or SCTP)`);
  return text;
}

export const CLUSTER_SCOPED = new Set(['Namespace', 'Node', 'CustomResourceDefinition', 'ClusterRole', 'ClusterRoleBinding', 'PersistentVolume', 'StorageClass']);

export interface Meta {
  name: string;
  namespace: string | undefined;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  uid: string | undefined;
}

export function metadata(object: K8sObject, clusterScoped: boolean): Meta {
  const meta = read.record(object.metadata, 'metadata');
  if (!meta) throw new FieldError('metadata.name', 'required (the object has no metadata)');
  const objectName = read.requiredString(meta.name, 'metadata.name');
  const namespace = clusterScoped
    ? read.string(meta.namespace, 'metadata.namespace')
    : name(meta.namespace ?? 'default', 'metadata.namespace', DNS1123_LABEL, 63, 'namespace name');
  return {
    name: objectName,
    namespace,
    labels: stringMap(meta.labels, 'metadata.labels'),
    annotations: stringMap(meta.annotations, 'metadata.annotations'),
    uid: read.string(meta.uid, 'metadata.uid'),
  };
}

/** A stable UID for objects written without one, so that restarts keep identities. */
export function syntheticUid(kind: string, namespace: string, objectName: string): string {
  const h = createHash('sha256').update(`${kind}/${namespace}/${objectName}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** The "Kind ns/name" of a raw object, as far as it can be read (for messages). */
export function describeRaw(raw: RawObject): string {
  const { object } = raw;
  const meta = isRecord(object.metadata) ? object.metadata : {};
  const objectName = typeof meta.name === 'string' && meta.name !== '' ? meta.name : undefined;
  const where = raw.item === undefined ? `document ${raw.document}` : `document ${raw.document} item ${raw.item}`;
  if (objectName === undefined) return `${object.kind} (${where})`;
  const namespace = CLUSTER_SCOPED.has(object.kind) ? (typeof meta.namespace === 'string' ? meta.namespace : undefined) : typeof meta.namespace === 'string' && meta.namespace !== '' ? meta.namespace : 'default';
  return objectLabel(object.kind, namespace, objectName);
}
