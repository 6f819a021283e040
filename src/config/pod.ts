import type { PodInfo, WorkloadRef } from '../mesh/model';
import { checkMode, DNS1123_SUBDOMAIN, IANA_SVC_NAME, ip, metadata, name, portNumber, protocol, read, syntheticUid, type Meta } from './core-fields';
import type { CoreKind } from './core-kind';
import { ipFamily } from './ip';
import type { K8sObject } from './k8s-yaml';
import { FieldError, isRecord, objectLabel } from './validation';

/** A v1 Pod: addresses, ports, readiness, and the workload that owns it. */
export function convertPod(object: K8sObject): PodInfo {
  const meta = metadata(object, false);
  name(meta.name, 'metadata.name', DNS1123_SUBDOMAIN, 253, 'pod name');
  checkMode(meta.annotations, 'metadata.annotations');
  const spec = read.record(object.spec, 'spec');
  if (!spec) throw new FieldError('spec', 'required');
  const nodeName = name(spec.nodeName, 'spec.nodeName', DNS1123_SUBDOMAIN, 253, 'node name');
  const hostNetwork = spec.hostNetwork ?? false;
  if (typeof hostNetwork !== 'boolean') throw new FieldError('spec.hostNetwork', `must be true or false, got ${read.describe(hostNetwork)}`);
  const serviceAccount =
    read.string(spec.serviceAccountName, 'spec.serviceAccountName') ?? read.string(spec.serviceAccount, 'spec.serviceAccount') ?? 'default';

  const containerPorts: PodInfo['containerPorts'] = [];
  read.list(spec.containers, 'spec.containers').forEach((container, c) => {
    const cpath = `spec.containers[${c}]`;
    if (!isRecord(container)) throw new FieldError(cpath, `must be a mapping, got ${read.describe(container)}`);
    read.list(container.ports, `${cpath}.ports`).forEach((port, p) => {
      const ppath = `${cpath}.ports[${p}]`;
      if (!isRecord(port)) throw new FieldError(ppath, `must be a mapping, got ${read.describe(port)}`);
      const portName = read.string(port.name, `${ppath}.name`);
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

  const status = read.record(object.status, 'status');
  if (!status) throw new FieldError('status.podIP', 'required (the embedded source has no scheduler: write status.podIP)');
  const primary = ip(status.podIP, 'status.podIP');
  const ips = [primary];
  read.list(status.podIPs, 'status.podIPs').forEach((entry, i) => {
    const path = `status.podIPs[${i}]`;
    if (!isRecord(entry)) throw new FieldError(path, `must be a mapping {ip: ...}, got ${read.describe(entry)}`);
    const address = ip(entry.ip, `${path}.ip`);
    if (i === 0 && address !== primary) throw new FieldError(`${path}.ip`, `must equal status.podIP (${primary}), got ${address}`);
    if (ips.includes(address)) return;
    if (ips.some((other) => ipFamily(other) === ipFamily(address))) {
      throw new FieldError(`${path}.ip`, `a pod has at most one address per IP family; ${address} repeats IPv${ipFamily(address)}`);
    }
    ips.push(address);
  });

  let ready = true;
  const phase = read.string(status.phase, 'status.phase');
  if (phase !== undefined && phase !== 'Running') ready = false;
  read.list(status.conditions, 'status.conditions').forEach((condition, i) => {
    if (isRecord(condition) && condition.type === 'Ready') {
      const value = read.string(condition.status, `status.conditions[${i}].status`);
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
  const refs = read.list((object.metadata as Record<string, unknown>).ownerReferences, 'metadata.ownerReferences').map((ref, i) => {
    const path = `metadata.ownerReferences[${i}]`;
    if (!isRecord(ref)) throw new FieldError(path, `must be a mapping {apiVersion, kind, name, uid, controller}, got ${read.describe(ref)}`);
    const controller = ref.controller;
    if (controller !== undefined && controller !== null && typeof controller !== 'boolean') {
      throw new FieldError(`${path}.controller`, `must be true or false, got ${read.describe(controller)}`);
    }
    return {
      apiVersion: read.string(ref.apiVersion, `${path}.apiVersion`),
      kind: read.requiredString(ref.kind, `${path}.kind`),
      name: read.requiredString(ref.name, `${path}.name`),
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

export const POD_CONVERTER: CoreKind<'pods'> = {
  kind: 'Pod',
  collection: 'pods',
  convert: convertPod,
  key: (pod) => objectLabel('Pod', pod.namespace, pod.name),
};
