import type { PodInfo } from './model';

/**
 * A workload's identity in the mesh: its namespace and name, the SPIFFE principal of its
 * service account, and the app/version/canonical names Istio labels it with. Telemetry
 * labels metrics and access logs with it; mTLS will present and check the principal, and
 * authorization will match on it. Treated as immutable: consumers cache per object
 * (workloadOf returns frozen objects).
 */
export interface WorkloadInfo {
  name: string;
  namespace: string;
  app?: string;
  version?: string;
  /** spiffe://cluster.local/ns/<ns>/sa/<sa> */
  principal?: string;
  canonicalService?: string;
  canonicalRevision?: string;
  /** The workload's cluster; defaults to the IstioMetrics' clusterId. */
  cluster?: string;
}

/** Istio's default trust domain, the host part of every principal unless configured. */
export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

/** The SPIFFE ID of a service account, as Istio spells it: spiffe://<td>/ns/<ns>/sa/<sa> ("default" when none). */
export function spiffePrincipal(namespace: string, serviceAccount: string | undefined, trustDomain = DEFAULT_TRUST_DOMAIN): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount || 'default'}`;
}

/** Characters Kubernetes uses for generated name suffixes (rand.SafeEncodeString). */
const K8S_SUFFIX = '[bcdfghjklmnpqrstvwxz2456789]';
const DEPLOYMENT_POD = new RegExp(`^(.+)-${K8S_SUFFIX}{6,10}-${K8S_SUFFIX}{5}$`);
const GENERATED_SUFFIX = new RegExp(`^(.+)-${K8S_SUFFIX}{5}$`);
const ORDINAL_POD = /^(.+)-\d+$/;

/**
 * The workload a pod belongs to, labelled as Istio labels it.
 *
 * - name: the label `service.istio.io/workload-name` (Istio's override), else the model's
 *   `workload` (from owner references, `{ kind, name }`) when the source filled it in, else
 *   the pod name without its controller's suffix:
 *   Deployment `web-7d9f8b6c5-x2k4q` -> `web`, StatefulSet `db-0` -> `db`, Job (label
 *   `job-name`) -> the job, DaemonSet (label `controller-revision-hash`, no StatefulSet
 *   label) `agent-x2k4q` -> `agent`; a bare pod keeps its name.
 * - app: label `app`, else `app.kubernetes.io/name`; version: `version`, else
 *   `app.kubernetes.io/version`.
 * - canonical service: `service.istio.io/canonical-name` || `app.kubernetes.io/name` ||
 *   `app` || the workload name; canonical revision: `service.istio.io/canonical-revision`
 *   || `app.kubernetes.io/version` || `version` || "latest".
 * - principal: spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount> (default SA
 *   "default").
 */
export function workloadOf(pod: PodInfo, options: { trustDomain?: string; cluster?: string } = {}): WorkloadInfo {
  const labels = pod.labels ?? {};
  const name = labels['service.istio.io/workload-name'] || modelWorkloadName(pod) || workloadNameFromPod(pod.name, labels);
  const app = labels['app'] || labels['app.kubernetes.io/name'] || undefined;
  const version = labels['version'] || labels['app.kubernetes.io/version'] || undefined;
  const info: WorkloadInfo = {
    name,
    namespace: pod.namespace,
    ...(app ? { app } : {}),
    ...(version ? { version } : {}),
    principal: spiffePrincipal(pod.namespace, pod.serviceAccount, options.trustDomain),
    canonicalService: labels['service.istio.io/canonical-name'] || labels['app.kubernetes.io/name'] || labels['app'] || name,
    canonicalRevision: labels['service.istio.io/canonical-revision'] || labels['app.kubernetes.io/version'] || labels['version'] || 'latest',
    ...(options.cluster ? { cluster: options.cluster } : {}),
  };
  return Object.freeze(info);
}

/**
 * The workload the configuration source resolved from the pod's owner references, when the
 * model carries one: `workload: { kind, name }` (or a plain name).
 */
function modelWorkloadName(pod: PodInfo): string | undefined {
  const ref = (pod as { workload?: unknown }).workload;
  if (typeof ref === 'string') return ref || undefined;
  if (typeof ref === 'object' && ref !== null) {
    const name = (ref as { name?: unknown }).name;
    if (typeof name === 'string' && name) return name;
  }
  return undefined;
}

/** The controller's name for a pod name, from the labels controllers set, else its shape. */
export function workloadNameFromPod(podName: string, labels: Record<string, string> = {}): string {
  const job = labels['job-name'] || labels['batch.kubernetes.io/job-name'];
  if (job) return job;
  const hash = labels['pod-template-hash'];
  if (hash) {
    const tail = `-${hash}-`;
    const at = podName.lastIndexOf(tail);
    if (at > 0 && podName.length - (at + tail.length) === 5) return podName.slice(0, at);
    if (podName.endsWith(`-${hash}`) && podName.length > hash.length + 1) return podName.slice(0, podName.length - hash.length - 1);
  }
  if (labels['statefulset.kubernetes.io/pod-name'] === podName || labels['apps.kubernetes.io/pod-index'] !== undefined) {
    const m = ORDINAL_POD.exec(podName);
    if (m) return m[1]!;
  }
  if (labels['controller-revision-hash'] && labels['statefulset.kubernetes.io/pod-name'] === undefined) {
    const m = GENERATED_SUFFIX.exec(podName);
    if (m) return m[1]!;
  }
  // No controller labels: judge by the shape of the name.
  let m = DEPLOYMENT_POD.exec(podName);
  if (m) return m[1]!;
  m = ORDINAL_POD.exec(podName);
  if (m) return m[1]!;
  return podName;
}
