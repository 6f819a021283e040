import { createHash } from 'node:crypto';
import { NodemeshError } from '../errors';
import {
  MESH_MODES,
  MODE_KEY,
  type EndpointSliceEndpoint,
  type EndpointSliceInfo,
  type EndpointSlicePort,
  type NamespaceInfo,
  type PodInfo,
  type ServiceInfo,
  type ServicePort,
  type WorkloadRef,
} from '../mesh/model';
import { canonicalIP, ipFamily } from './ip';
import type { K8sObject, RawObject } from './k8s-yaml';

/**
 * Kubernetes v1 Namespace, Pod and Service objects and discovery.k8s.io/v1 EndpointSlices
 * into the mesh model, with the checks the API server would have made (the embedded source
 * has no API server in front of it). A bad object is rejected with a reason naming the
 * file, the object and the field path; the other objects of the file still apply. Kinds
 * nodemesh reads later (HTTPRoute, its own CRDs, Node) are kept as they are in `others`.
 */

export const CONFIG_INVALID = 'ERR_NM_CONFIG_INVALID';

/** An object of a kind this module does not convert, kept for later consumers. */
export interface OtherObject {
  file: string;
  apiVersion: string;
  kind: string;
  /** undefined for cluster-scoped kinds (Node, CRDs ...) when the object sets none. */
  namespace: string | undefined;
  name: string;
  object: K8sObject;
}

export interface RejectedObject {
  file: string;
  /** "Pod demo/a1", "Service default/web", "document 3" when the object has no name. */
  object: string;
  /** Field path of the offending value ("spec.ports[0].port"), when one field is to blame. */
  path?: string;
  /** The whole story, naming file, object and field: what an operator reads. */
  reason: string;
  code: string;
}

export interface ConvertedObjects {
  namespaces: NamespaceInfo[];
  pods: PodInfo[];
  services: ServiceInfo[];
  /** discovery.k8s.io/v1 EndpointSlices (a cluster's endpoints; the YAML source may have some too). */
  endpointSlices: EndpointSliceInfo[];
  others: OtherObject[];
  rejected: RejectedObject[];
}

export const ENDPOINT_SLICE_API_VERSION = 'discovery.k8s.io/v1';
/** The label that ties an EndpointSlice to its Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** Thrown inside the converters; turned into a RejectedObject by convertObjects(). */
class FieldError extends Error {
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${path}: ${problem}`);
  }
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const IANA_SVC_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const PROTOCOLS = ['TCP', 'UDP', 'SCTP'];

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function optionalRecord(value: unknown, path: string): Record<string, unknown> | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isRecord(value)) throw new FieldError(path, `must be a mapping, got ${describe(value)}`);
  return value;
}

function optionalArray(value: unknown, path: string): unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new FieldError(path, `must be a list, got ${describe(value)}`);
  return value;
}

function optionalString(value: unknown, path: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new FieldError(path, `must be a string, got ${describe(value)}`);
  return value;
}

function requiredString(value: unknown, path: string): string {
  const text = optionalString(value, path);
  if (text === undefined || text === '') throw new FieldError(path, 'required (a non-empty string)');
  return text;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (value instanceof Date) return `a timestamp (${value.toISOString()}); quote it`;
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `"${value}"`;
  return `${typeof value} ${String(value)}${typeof value === 'number' || typeof value === 'boolean' ? '; quote it to make it a string' : ''}`;
}

function name(value: unknown, path: string, pattern: RegExp, maxLength: number, what: string): string {
  const text = requiredString(value, path);
  if (text.length > maxLength || !pattern.test(text)) {
    throw new FieldError(path, `"${text}" is not a valid ${what} (lower-case letters, digits and '-', at most ${maxLength} characters)`);
  }
  return text;
}

/** A map of string values (labels, annotations, selectors). */
function stringMap(value: unknown, path: string): Record<string, string> {
  const record = optionalRecord(value, path);
  const out: Record<string, string> = {};
  if (!record) return out;
  for (const [key, entry] of Object.entries(record)) {
    if (key === '') throw new FieldError(path, 'keys must not be empty');
    if (typeof entry !== 'string') throw new FieldError(`${path}["${key}"]`, `must be a string, got ${describe(entry)}`);
    out[key] = entry;
  }
  return out;
}

function checkMode(map: Record<string, string>, path: string): void {
  const mode = map[MODE_KEY];
  if (mode !== undefined && !(MESH_MODES as readonly string[]).includes(mode)) {
    throw new FieldError(`${path}["${MODE_KEY}"]`, `"${mode}" is not a mesh mode (use one of ${MESH_MODES.join(', ')})`);
  }
}

function ip(value: unknown, path: string): string {
  const text = requiredString(value, path);
  const canonical = canonicalIP(text);
  if (canonical === undefined || text.includes('%')) throw new FieldError(path, `"${text}" is not a valid IP address`);
  return canonical;
}

function portNumber(value: unknown, path: string): number {
  if (value === undefined || value === null) throw new FieldError(path, 'required (a port number, 1-65535)');
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) {
    throw new FieldError(path, `must be a port number (1-65535), got ${describe(value)}`);
  }
  return value;
}

function protocol(value: unknown, path: string): string {
  const text = optionalString(value, path) ?? 'TCP';
  if (!PROTOCOLS.includes(text)) throw new FieldError(path, `"${text}" is not a protocol (use TCP, UDP or SCTP)`);
  return text;
}

/** The "Kind namespace/name" used in messages. */
export function objectLabel(kind: string, namespace: string | undefined, objectName: string | undefined): string {
  if (objectName === undefined) return kind;
  return namespace === undefined ? `${kind} ${objectName}` : `${kind} ${namespace}/${objectName}`;
}

const CLUSTER_SCOPED = new Set(['Namespace', 'Node', 'CustomResourceDefinition', 'ClusterRole', 'ClusterRoleBinding', 'PersistentVolume', 'StorageClass']);

interface Meta {
  name: string;
  namespace: string | undefined;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  uid: string | undefined;
}

function metadata(object: K8sObject, clusterScoped: boolean): Meta {
  const meta = optionalRecord(object.metadata, 'metadata');
  if (!meta) throw new FieldError('metadata.name', 'required (the object has no metadata)');
  const objectName = requiredString(meta.name, 'metadata.name');
  const namespace = clusterScoped
    ? optionalString(meta.namespace, 'metadata.namespace')
    : name(meta.namespace ?? 'default', 'metadata.namespace', DNS1123_LABEL, 63, 'namespace name');
  return {
    name: objectName,
    namespace,
    labels: stringMap(meta.labels, 'metadata.labels'),
    annotations: stringMap(meta.annotations, 'metadata.annotations'),
    uid: optionalString(meta.uid, 'metadata.uid'),
  };
}

/** A stable UID for objects written without one, so that restarts keep identities. */
function syntheticUid(kind: string, namespace: string, objectName: string): string {
  const h = createHash('sha256').update(`${kind}/${namespace}/${objectName}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export function convertNamespace(object: K8sObject): NamespaceInfo {
  const meta = metadata(object, true);
  name(meta.name, 'metadata.name', DNS1123_LABEL, 63, 'namespace name');
  checkMode(meta.labels, 'metadata.labels');
  return { name: meta.name, labels: meta.labels };
}

export function convertPod(object: K8sObject): PodInfo {
  const meta = metadata(object, false);
  name(meta.name, 'metadata.name', DNS1123_SUBDOMAIN, 253, 'pod name');
  checkMode(meta.annotations, 'metadata.annotations');
  const spec = optionalRecord(object.spec, 'spec');
  if (!spec) throw new FieldError('spec', 'required');
  const nodeName = name(spec.nodeName, 'spec.nodeName', DNS1123_SUBDOMAIN, 253, 'node name');
  const hostNetwork = spec.hostNetwork ?? false;
  if (typeof hostNetwork !== 'boolean') throw new FieldError('spec.hostNetwork', `must be true or false, got ${describe(hostNetwork)}`);
  const serviceAccount =
    optionalString(spec.serviceAccountName, 'spec.serviceAccountName') ?? optionalString(spec.serviceAccount, 'spec.serviceAccount') ?? 'default';

  const containerPorts: PodInfo['containerPorts'] = [];
  optionalArray(spec.containers, 'spec.containers').forEach((container, c) => {
    const cpath = `spec.containers[${c}]`;
    if (!isRecord(container)) throw new FieldError(cpath, `must be a mapping, got ${describe(container)}`);
    optionalArray(container.ports, `${cpath}.ports`).forEach((port, p) => {
      const ppath = `${cpath}.ports[${p}]`;
      if (!isRecord(port)) throw new FieldError(ppath, `must be a mapping, got ${describe(port)}`);
      const portName = optionalString(port.name, `${ppath}.name`);
      if (portName !== undefined && (portName.length > 15 || !IANA_SVC_NAME.test(portName))) {
        throw new FieldError(`${ppath}.name`, `"${portName}" is not a valid port name (lower-case letters, digits and '-', at most 15 characters)`);
      }
      const entry: PodInfo['containerPorts'][number] = {
        port: portNumber(port.containerPort, `${ppath}.containerPort`),
        protocol: protocol(port.protocol, `${ppath}.protocol`),
      };
      if (portName !== undefined) entry.name = portName;
      containerPorts.push(entry);
    });
  });

  const status = optionalRecord(object.status, 'status');
  if (!status) throw new FieldError('status.podIP', 'required (the embedded source has no scheduler: write status.podIP)');
  const primary = ip(status.podIP, 'status.podIP');
  const ips = [primary];
  optionalArray(status.podIPs, 'status.podIPs').forEach((entry, i) => {
    const path = `status.podIPs[${i}]`;
    if (!isRecord(entry)) throw new FieldError(path, `must be a mapping {ip: ...}, got ${describe(entry)}`);
    const address = ip(entry.ip, `${path}.ip`);
    if (i === 0 && address !== primary) throw new FieldError(`${path}.ip`, `must equal status.podIP (${primary}), got ${address}`);
    if (ips.includes(address)) return;
    if (ips.some((other) => ipFamily(other) === ipFamily(address))) {
      throw new FieldError(`${path}.ip`, `a pod has at most one address per IP family; ${address} repeats IPv${ipFamily(address)}`);
    }
    ips.push(address);
  });

  let ready = true;
  const phase = optionalString(status.phase, 'status.phase');
  if (phase !== undefined && phase !== 'Running') ready = false;
  optionalArray(status.conditions, 'status.conditions').forEach((condition, i) => {
    if (isRecord(condition) && condition.type === 'Ready') {
      const value = optionalString(condition.status, `status.conditions[${i}].status`);
      ready = value === 'True';
    }
  });

  return {
    name: meta.name,
    namespace: meta.namespace!,
    uid: meta.uid ?? syntheticUid('Pod', meta.namespace!, meta.name),
    labels: meta.labels,
    annotations: meta.annotations,
    nodeName,
    ips,
    hostNetwork,
    serviceAccount,
    containerPorts,
    ready,
    workload: podWorkload(object, meta),
  };
}

/** The Job a CronJob creates is named `<cronjob>-<scheduled time in minutes>` (8 to 10 digits, as Istio reads it). */
const CRONJOB_JOB_NAME = /^(.+)-\d{8,10}$/;
const POD_TEMPLATE_HASH = 'pod-template-hash';
/** Owner kinds that are workloads, with the API group they must come from. */
const OWNER_GROUPS: Record<string, string> = { ReplicaSet: 'apps', Deployment: 'apps', StatefulSet: 'apps', DaemonSet: 'apps', Job: 'batch', CronJob: 'batch' };

/**
 * The workload of a pod from its ownerReferences: the controller reference (the one with
 * `controller: true`; in hand-written YAML, the first one not marked `controller: false`).
 */
function podWorkload(object: K8sObject, meta: Meta): WorkloadRef {
  const self: WorkloadRef = { kind: 'Pod', name: meta.name };
  const refs = optionalArray((object.metadata as Record<string, unknown>).ownerReferences, 'metadata.ownerReferences').map((ref, i) => {
    const path = `metadata.ownerReferences[${i}]`;
    if (!isRecord(ref)) throw new FieldError(path, `must be a mapping {apiVersion, kind, name, uid, controller}, got ${describe(ref)}`);
    const controller = ref.controller;
    if (controller !== undefined && controller !== null && typeof controller !== 'boolean') {
      throw new FieldError(`${path}.controller`, `must be true or false, got ${describe(controller)}`);
    }
    return {
      apiVersion: optionalString(ref.apiVersion, `${path}.apiVersion`),
      kind: requiredString(ref.kind, `${path}.kind`),
      name: requiredString(ref.name, `${path}.name`),
      controller: controller as boolean | undefined | null,
    };
  });
  const owner = refs.find((r) => r.controller === true) ?? refs.find((r) => r.controller !== false);
  if (!owner) return self;
  const group = OWNER_GROUPS[owner.kind];
  if (group === undefined) return self;
  if (owner.apiVersion !== undefined && owner.apiVersion.split('/')[0] !== group) return self; // same kind name, another API
  if (owner.kind === 'ReplicaSet') {
    const hash = meta.labels[POD_TEMPLATE_HASH];
    if (hash !== undefined && hash !== '' && owner.name.endsWith(`-${hash}`) && owner.name.length > hash.length + 1) {
      return { kind: 'Deployment', name: owner.name.slice(0, -(hash.length + 1)) };
    }
    return { kind: 'ReplicaSet', name: owner.name };
  }
  if (owner.kind === 'Job') {
    const match = CRONJOB_JOB_NAME.exec(owner.name);
    if (match) return { kind: 'CronJob', name: match[1]! };
    return { kind: 'Job', name: owner.name };
  }
  return { kind: owner.kind as WorkloadRef['kind'], name: owner.name };
}

const ADDRESS_TYPES = ['IPv4', 'IPv6', 'FQDN'] as const;

function optionalBoolean(value: unknown, path: string): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw new FieldError(path, `must be true or false, got ${describe(value)}`);
  return value;
}

/**
 * A discovery.k8s.io/v1 EndpointSlice. Conditions follow the API's defaults: ready absent
 * means true, serving absent means the same as ready, terminating absent means false.
 */
export function convertEndpointSlice(object: K8sObject): EndpointSliceInfo {
  const meta = metadata(object, false);
  name(meta.name, 'metadata.name', DNS1123_SUBDOMAIN, 253, 'EndpointSlice name');
  const addressType = requiredString(object.addressType, 'addressType');
  if (!(ADDRESS_TYPES as readonly string[]).includes(addressType)) {
    throw new FieldError('addressType', `"${addressType}" is not an address type (use IPv4, IPv6 or FQDN)`);
  }
  const family = addressType === 'IPv4' ? 4 : addressType === 'IPv6' ? 6 : undefined;
  const ports: EndpointSlicePort[] = optionalArray(object.ports, 'ports').map((raw, i) => {
    const path = `ports[${i}]`;
    if (!isRecord(raw)) throw new FieldError(path, `must be a mapping, got ${describe(raw)}`);
    const port: EndpointSlicePort = {
      name: optionalString(raw.name, `${path}.name`) ?? '',
      port: raw.port === undefined || raw.port === null ? undefined : portNumber(raw.port, `${path}.port`),
      protocol: protocol(raw.protocol, `${path}.protocol`),
    };
    const appProtocol = optionalString(raw.appProtocol, `${path}.appProtocol`);
    if (appProtocol !== undefined) port.appProtocol = appProtocol;
    return port;
  });
  const endpoints: EndpointSliceEndpoint[] = optionalArray(object.endpoints, 'endpoints').map((raw, i) => {
    const path = `endpoints[${i}]`;
    if (!isRecord(raw)) throw new FieldError(path, `must be a mapping, got ${describe(raw)}`);
    const addresses = optionalArray(raw.addresses, `${path}.addresses`);
    if (addresses.length === 0) throw new FieldError(`${path}.addresses`, 'required (at least one address)');
    let address: string;
    if (family === undefined) {
      address = requiredString(addresses[0], `${path}.addresses[0]`);
    } else {
      address = ip(addresses[0], `${path}.addresses[0]`);
      if (ipFamily(address) !== family) throw new FieldError(`${path}.addresses[0]`, `${address} is not an ${addressType} address (the slice's addressType)`);
    }
    const conditions = optionalRecord(raw.conditions, `${path}.conditions`) ?? {};
    const ready = optionalBoolean(conditions.ready, `${path}.conditions.ready`) ?? true;
    const endpoint: EndpointSliceEndpoint = {
      address,
      ready,
      serving: optionalBoolean(conditions.serving, `${path}.conditions.serving`) ?? ready,
      terminating: optionalBoolean(conditions.terminating, `${path}.conditions.terminating`) ?? false,
    };
    const nodeName = optionalString(raw.nodeName, `${path}.nodeName`);
    if (nodeName !== undefined && nodeName !== '') endpoint.nodeName = nodeName;
    const zone = optionalString(raw.zone, `${path}.zone`);
    if (zone !== undefined && zone !== '') endpoint.zone = zone;
    const targetRef = optionalRecord(raw.targetRef, `${path}.targetRef`);
    if (targetRef && targetRef.kind === 'Pod') {
      const podName = requiredString(targetRef.name, `${path}.targetRef.name`);
      const podNamespace = optionalString(targetRef.namespace, `${path}.targetRef.namespace`) || meta.namespace!;
      endpoint.podKey = `${podNamespace}/${podName}`;
    }
    return endpoint;
  });
  const serviceName = meta.labels[SERVICE_NAME_LABEL];
  return {
    name: meta.name,
    namespace: meta.namespace!,
    serviceName: serviceName === undefined || serviceName === '' ? undefined : serviceName,
    addressType: addressType as EndpointSliceInfo['addressType'],
    ports,
    endpoints,
  };
}

export function convertService(object: K8sObject): ServiceInfo {
  const meta = metadata(object, false);
  name(meta.name, 'metadata.name', DNS1035_LABEL, 63, 'service name (it must start with a letter)');
  const spec = optionalRecord(object.spec, 'spec');
  if (!spec) throw new FieldError('spec', 'required');
  const type = optionalString(spec.type, 'spec.type') ?? 'ClusterIP';
  if (!['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'].includes(type)) {
    throw new FieldError('spec.type', `"${type}" is not a Service type`);
  }

  const clusterIP = optionalString(spec.clusterIP, 'spec.clusterIP');
  const listed = optionalArray(spec.clusterIPs, 'spec.clusterIPs');
  let clusterIPs: string[] = [];
  const headless = clusterIP === 'None' || listed[0] === 'None';
  if (!headless && type !== 'ExternalName') {
    if (clusterIP !== undefined && clusterIP !== '') clusterIPs.push(ip(clusterIP, 'spec.clusterIP'));
    listed.forEach((entry, i) => {
      const address = ip(entry, `spec.clusterIPs[${i}]`);
      if (i === 0 && clusterIPs.length > 0 && clusterIPs[0] !== address) {
        throw new FieldError('spec.clusterIPs[0]', `must equal spec.clusterIP (${clusterIPs[0]}), got ${address}`);
      }
      if (clusterIPs.includes(address)) return;
      if (clusterIPs.some((other) => ipFamily(other) === ipFamily(address))) {
        throw new FieldError(`spec.clusterIPs[${i}]`, `a Service has at most one cluster IP per IP family; ${address} repeats IPv${ipFamily(address)}`);
      }
      clusterIPs.push(address);
    });
    if (clusterIPs.length === 0) {
      throw new FieldError(
        'spec.clusterIP',
        "required in the embedded source (there is no API server to allocate one): set an address, or 'None' for a headless Service",
      );
    }
  } else {
    clusterIPs = [];
  }

  const rawPorts = optionalArray(spec.ports, 'spec.ports');
  const ports: ServicePort[] = rawPorts.map((raw, i) => {
    const path = `spec.ports[${i}]`;
    if (!isRecord(raw)) throw new FieldError(path, `must be a mapping, got ${describe(raw)}`);
    const portName = optionalString(raw.name, `${path}.name`);
    if (portName !== undefined && portName !== '' && (portName.length > 63 || !DNS1123_LABEL.test(portName))) {
      throw new FieldError(`${path}.name`, `"${portName}" is not a valid port name (lower-case letters, digits and '-')`);
    }
    if ((portName === undefined || portName === '') && rawPorts.length > 1) {
      throw new FieldError(`${path}.name`, 'required when a Service has more than one port');
    }
    const port = portNumber(raw.port, `${path}.port`);
    let targetPort: number | string = port;
    if (raw.targetPort !== undefined && raw.targetPort !== null) {
      if (typeof raw.targetPort === 'string') {
        if (/^[0-9]+$/.test(raw.targetPort)) targetPort = portNumber(Number(raw.targetPort), `${path}.targetPort`);
        else if (raw.targetPort.length > 15 || !IANA_SVC_NAME.test(raw.targetPort)) {
          throw new FieldError(`${path}.targetPort`, `"${raw.targetPort}" is neither a port number nor a container port name`);
        } else targetPort = raw.targetPort;
      } else targetPort = portNumber(raw.targetPort, `${path}.targetPort`);
    }
    const entry: ServicePort = { port, targetPort, protocol: protocol(raw.protocol, `${path}.protocol`) };
    if (portName !== undefined && portName !== '') entry.name = portName;
    const appProtocol = optionalString(raw.appProtocol, `${path}.appProtocol`);
    if (appProtocol !== undefined) entry.appProtocol = appProtocol;
    return entry;
  });
  const seen = new Set<string>();
  ports.forEach((p, i) => {
    if (p.name === undefined) return;
    if (seen.has(p.name)) throw new FieldError(`spec.ports[${i}].name`, `"${p.name}" is used by another port of this Service`);
    seen.add(p.name);
  });

  const selector = stringMap(spec.selector, 'spec.selector');
  return {
    name: meta.name,
    namespace: meta.namespace!,
    clusterIPs,
    ports,
    // Kubernetes treats an empty selector like none: endpoints are managed elsewhere.
    selector: Object.keys(selector).length > 0 ? selector : undefined,
  };
}

function convertOther(raw: RawObject): OtherObject {
  const { object } = raw;
  const clusterScoped = CLUSTER_SCOPED.has(object.kind);
  const meta = metadata(object, clusterScoped);
  const apiVersion = optionalString(object.apiVersion, 'apiVersion') ?? '';
  return { file: raw.file, apiVersion, kind: object.kind, namespace: meta.namespace, name: meta.name, object };
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

/** Builds the error for one rejected object: code ERR_NM_CONFIG_INVALID. */
export function rejection(file: string, object: string, reason: string, path?: string): RejectedObject {
  const message = path === undefined ? `${file}: ${object}: ${reason}` : `${file}: ${object}: ${path}: ${reason}`;
  return path === undefined ? { file, object, reason: message, code: CONFIG_INVALID } : { file, object, path, reason: message, code: CONFIG_INVALID };
}

/** The rejection as a throwable error, for callers that want to fail on the first one. */
export function rejectionError(rejected: RejectedObject): NodemeshError {
  return new NodemeshError(rejected.code, rejected.reason, { details: { file: rejected.file, object: rejected.object, path: rejected.path } });
}

/**
 * Converts raw objects (from one or many files). Rejects bad objects one by one and
 * duplicates (same kind, namespace and name: the first one read wins).
 */
export function convertObjects(raws: readonly RawObject[]): ConvertedObjects {
  const out: ConvertedObjects = { namespaces: [], pods: [], services: [], endpointSlices: [], others: [], rejected: [] };
  const seen = new Map<string, string>();
  for (const raw of raws) {
    const label = describeRaw(raw);
    try {
      let key: string;
      let add: () => void;
      switch (raw.object.kind) {
        case 'Namespace': {
          const ns = convertNamespace(raw.object);
          key = objectLabel('Namespace', undefined, ns.name);
          add = () => out.namespaces.push(ns);
          break;
        }
        case 'Pod': {
          const pod = convertPod(raw.object);
          key = objectLabel('Pod', pod.namespace, pod.name);
          add = () => out.pods.push(pod);
          break;
        }
        case 'Service': {
          const svc = convertService(raw.object);
          key = objectLabel('Service', svc.namespace, svc.name);
          add = () => out.services.push(svc);
          break;
        }
        case 'EndpointSlice': {
          if (raw.object.apiVersion !== ENDPOINT_SLICE_API_VERSION) {
            const other = convertOther(raw);
            key = `${other.apiVersion.split('/')[0]}:${objectLabel(other.kind, other.namespace, other.name)}`;
            add = () => out.others.push(other);
            break;
          }
          const slice = convertEndpointSlice(raw.object);
          key = `discovery.k8s.io:${objectLabel('EndpointSlice', slice.namespace, slice.name)}`;
          add = () => out.endpointSlices.push(slice);
          break;
        }
        default: {
          const other = convertOther(raw);
          key = `${other.apiVersion.split('/')[0]}:${objectLabel(other.kind, other.namespace, other.name)}`;
          add = () => out.others.push(other);
        }
      }
      const first = seen.get(key);
      if (first !== undefined) {
        out.rejected.push(rejection(raw.file, label, `duplicate: the same object is already defined in ${first} (the first one read wins)`));
        continue;
      }
      seen.set(key, raw.file);
      add();
    } catch (err) {
      if (err instanceof FieldError) out.rejected.push(rejection(raw.file, label, err.problem, err.path));
      else throw err;
    }
  }
  return out;
}
