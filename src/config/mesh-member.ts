import { MODE_KEY, type PodInfo, type WorkloadKind } from '../mesh/model';
import { DNS1123_SUBDOMAIN, ip, metadata, name, read, stringMap } from './core-fields';
import type { K8sObject } from './k8s-yaml';
import { FieldError, isRecord } from './validation';

/**
 * MeshMember (nodemesh.dev/v1alpha1): an enrolled pod as its node's agent publishes it for
 * the agents of the other nodes, which watch only their own node's Pods. It carries what a
 * source needs to reach the pod through the tunnel and to check who answers: node, IPs,
 * service account (the identity), labels (policy selectors) and workload (telemetry).
 */

export const MESH_MEMBER_API_VERSION = 'nodemesh.dev/v1alpha1';
export const MESH_MEMBER_KIND = 'MeshMember';
/** The label the agent of a node finds its own members by. */
export const MEMBER_NODE_LABEL = 'nodemesh.dev/node';

const WORKLOAD_KINDS: readonly WorkloadKind[] = ['Deployment', 'StatefulSet', 'DaemonSet', 'Job', 'CronJob', 'ReplicaSet', 'Pod'];

export interface MeshMemberSpec {
  nodeName: string;
  serviceAccount: string;
  ips: string[];
  labels: Record<string, string>;
  workload?: { kind: WorkloadKind; name: string };
}

/** What the agent of the pod's node publishes about it. */
export function memberSpecOf(pod: PodInfo): MeshMemberSpec {
  return {
    nodeName: pod.nodeName,
    serviceAccount: pod.serviceAccount || 'default',
    ips: [...pod.ips],
    labels: { ...pod.labels },
    ...(pod.workload ? { workload: { kind: pod.workload.kind, name: pod.workload.name } } : {}),
  };
}

/** The MeshMember object of an enrolled pod, owned by its Pod (the garbage collector removes it with the pod). */
export function memberObjectOf(pod: PodInfo): K8sObject {
  return {
    apiVersion: MESH_MEMBER_API_VERSION,
    kind: MESH_MEMBER_KIND,
    metadata: {
      name: pod.name,
      namespace: pod.namespace,
      labels: { [MEMBER_NODE_LABEL]: pod.nodeName, 'app.kubernetes.io/managed-by': 'nodemesh-agent' },
      ...(pod.uid ? { ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: pod.name, uid: pod.uid }] } : {}),
    },
    spec: memberSpecOf(pod) as unknown as Record<string, unknown>,
  };
}

/**
 * A pod of another node, as its member says: enrolled (mode ambient), ready, with no
 * container ports (nothing of it is captured here). Throws FieldError for a bad member.
 */
export function podOfMember(object: K8sObject): PodInfo {
  const meta = metadata(object, false);
  const spec = read.record(object.spec, 'spec');
  if (!spec) throw new FieldError('spec', 'required');
  const nodeName = name(spec.nodeName, 'spec.nodeName', DNS1123_SUBDOMAIN, 253, 'node name');
  const serviceAccount = name(spec.serviceAccount, 'spec.serviceAccount', DNS1123_SUBDOMAIN, 253, 'service account name');
  const ips = read.list(spec.ips, 'spec.ips').map((v, i) => ip(v, `spec.ips[${i}]`));
  if (ips.length === 0) throw new FieldError('spec.ips', 'required (the pod\'s addresses)');
  let workload: PodInfo['workload'];
  if (spec.workload !== undefined) {
    if (!isRecord(spec.workload)) throw new FieldError('spec.workload', 'must be a mapping {kind, name}');
    const kind = read.requiredString(spec.workload.kind, 'spec.workload.kind');
    if (!(WORKLOAD_KINDS as readonly string[]).includes(kind)) throw new FieldError('spec.workload.kind', `"${kind}" is not one of ${WORKLOAD_KINDS.join(', ')}`);
    workload = { kind: kind as WorkloadKind, name: read.requiredString(spec.workload.name, 'spec.workload.name') };
  }
  const ownerUid = Array.isArray((object.metadata as Record<string, unknown>).ownerReferences)
    ? ((object.metadata as { ownerReferences: Array<{ uid?: unknown }> }).ownerReferences[0]?.uid as string | undefined)
    : undefined;
  return {
    name: meta.name,
    namespace: meta.namespace!,
    uid: ownerUid ?? meta.uid ?? '',
    labels: stringMap(spec.labels, 'spec.labels'),
    annotations: { [MODE_KEY]: 'ambient' },
    nodeName,
    ips,
    hostNetwork: false,
    serviceAccount,
    containerPorts: [],
    ready: true,
    ...(workload ? { workload } : {}),
  };
}
