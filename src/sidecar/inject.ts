import { parseAllDocuments, stringify } from 'yaml';
import { NodemeshError } from '../errors';
import { MODE_KEY } from '../mesh/model';

/**
 * Sidecar injection, as pure functions over Kubernetes objects: `nodemesh inject` (files,
 * like `istioctl kube-inject`) and the admission webhook (one Pod, answered with a JSON
 * Patch) both go through injectPod(), so they add exactly the same containers.
 *
 * What a pod gets:
 * - init container `nodemesh-init` (last of the init containers, so the ones before it run
 *   uncaptured, as they would without the mesh): `nodemesh sidecar-init` as root with
 *   NET_ADMIN and NET_RAW only; installs the in-pod nat rules, exempting the proxy's uid;
 * - container `nodemesh-proxy` (first, so that it starts first): `nodemesh sidecar --kube`
 *   as uid 1337 with no capability, admin on 15020 and health on 15021 (probed); with the
 *   mesh's CA (`identity`), its pod's projected token for the CA and the trust bundle's
 *   ConfigMap as volumes, so that it gets its pod's certificate and talks mTLS;
 * - annotation `nodemesh.dev/mode: sidecar` (what the agent and the sidecar read), and
 *   `kubectl.kubernetes.io/default-container` naming the app, so that `kubectl logs` and
 *   `exec` keep going to the app.
 * Injecting an injected pod gives the same pod (the two containers are rebuilt in place).
 * Pods annotated `nodemesh.dev/mode: off` and hostNetwork pods are left alone.
 */

export const INIT_CONTAINER = 'nodemesh-init';
export const PROXY_CONTAINER = 'nodemesh-proxy';
export const DEFAULT_CONTAINER_ANNOTATION = 'kubectl.kubernetes.io/default-container';
/** The proxy's uid: the iptables rules let its connections through (excludeUid). */
export const PROXY_UID = 1337;
export const ADMIN_PORT = 15020;
export const HEALTH_PORT = 15021;

export interface InjectOptions {
  /** The nodemesh image, for both containers. */
  image: string;
  imagePullPolicy?: 'IfNotPresent' | 'Always' | 'Never';
  /** Log level of both containers (NODEMESH_LOG_LEVEL); default info. */
  logLevel?: string;
  /** The mesh's CA: the proxy gets its pod's certificate and talks mTLS. Absent: no mTLS. */
  identity?: SidecarIdentityOptions;
}

/**
 * What an injected proxy needs to get its pod's certificate: the CA's address and name, and
 * the ConfigMap with the trust bundle that the CA publishes into every namespace
 * (`nodemesh identity serve --publish-bundle-all NAME`). The pod's own service-account
 * token, projected for the CA's audience, is bound to the pod: the CA gives it that pod's
 * certificate and no other.
 */
export interface SidecarIdentityOptions {
  caAddress: string;
  caServerName?: string;
  /** The trust bundle's ConfigMap, in the pod's namespace (key ca.crt). */
  bundleConfigMap: string;
  trustDomain?: string;
  meshRootNamespace?: string;
}

/** Where the injected proxy finds its token and the trust bundle. */
export const TOKEN_VOLUME = 'nodemesh-ca-token';
export const BUNDLE_VOLUME = 'nodemesh-ca-root';
const TOKEN_DIR = '/var/run/secrets/nodemesh';
const BUNDLE_DIR = '/var/run/nodemesh/ca';
/** The projected token's lifetime; kubelet renews it well before, in place. */
const TOKEN_SECONDS = 3600;
const CA_AUDIENCE = 'nodemesh-ca';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

export type PodDecision = { injected: true } | { injected: false; reason: string };

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fieldEnv(name: string, fieldPath: string): Obj {
  return { name, valueFrom: { fieldRef: { fieldPath } } };
}

export function initContainer(options: InjectOptions): Obj {
  return {
    name: INIT_CONTAINER,
    image: options.image,
    imagePullPolicy: options.imagePullPolicy ?? 'IfNotPresent',
    command: ['nodemesh', 'sidecar-init'],
    args: ['--pod-ip', '$(POD_IPS)', '--exclude-uid', String(PROXY_UID)],
    env: [fieldEnv('POD_IPS', 'status.podIPs'), { name: 'NODEMESH_LOG_LEVEL', value: options.logLevel ?? 'info' }],
    resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '128Mi' } },
    securityContext: {
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
    },
  };
}

export function proxyContainer(options: InjectOptions): Obj {
  const probe = (path: string, periodSeconds: number, failureThreshold: number): Obj => ({
    httpGet: { path, port: HEALTH_PORT },
    periodSeconds,
    failureThreshold,
    timeoutSeconds: 2,
  });
  return {
    name: PROXY_CONTAINER,
    image: options.image,
    imagePullPolicy: options.imagePullPolicy ?? 'IfNotPresent',
    args: ['sidecar', '--kube', '--pod', '$(POD_NAMESPACE)/$(POD_NAME)', ...identityArgs(options.identity)],
    env: [
      fieldEnv('POD_NAME', 'metadata.name'),
      fieldEnv('POD_NAMESPACE', 'metadata.namespace'),
      fieldEnv('NODE_NAME', 'spec.nodeName'),
      { name: 'NODEMESH_LOG_LEVEL', value: options.logLevel ?? 'info' },
    ],
    ports: [
      { name: 'nm-admin', containerPort: ADMIN_PORT, protocol: 'TCP' },
      { name: 'nm-health', containerPort: HEALTH_PORT, protocol: 'TCP' },
    ],
    startupProbe: probe('/healthz/ready', 1, 60),
    readinessProbe: probe('/healthz/ready', 2, 3),
    livenessProbe: probe('/healthz/live', 10, 3),
    resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '256Mi' } },
    ...(options.identity && {
      volumeMounts: [
        { name: TOKEN_VOLUME, mountPath: TOKEN_DIR, readOnly: true },
        { name: BUNDLE_VOLUME, mountPath: BUNDLE_DIR, readOnly: true },
      ],
    }),
    securityContext: {
      runAsUser: PROXY_UID,
      runAsGroup: PROXY_UID,
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      privileged: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    },
  };
}

function identityArgs(identity: SidecarIdentityOptions | undefined): string[] {
  if (!identity) return [];
  return [
    '--ca-address', identity.caAddress,
    ...(identity.caServerName ? ['--ca-server-name', identity.caServerName] : []),
    '--ca-bundle-file', `${BUNDLE_DIR}/ca.crt`,
    '--ca-token-file', `${TOKEN_DIR}/token`,
    ...(identity.trustDomain ? ['--trust-domain', identity.trustDomain] : []),
    ...(identity.meshRootNamespace ? ['--mesh-root-namespace', identity.meshRootNamespace] : []),
  ];
}

/** The pod's volumes for the proxy's identity: its token for the CA's audience, and the trust bundle. */
export function identityVolumes(identity: SidecarIdentityOptions): Obj[] {
  return [
    { name: TOKEN_VOLUME, projected: { sources: [{ serviceAccountToken: { audience: CA_AUDIENCE, expirationSeconds: TOKEN_SECONDS, path: 'token' } }] } },
    { name: BUNDLE_VOLUME, configMap: { name: identity.bundleConfigMap } },
  ];
}

/** Whether a pod (metadata + spec) is to be injected; why not, when not. */
export function podDecision(metadata: Obj | undefined, spec: Obj | undefined, namespaceMode?: string): PodDecision {
  if (!isObj(spec)) return { injected: false, reason: 'it has no pod spec' };
  if (spec.hostNetwork === true) return { injected: false, reason: 'it uses hostNetwork (never captured)' };
  const annotation = isObj(metadata?.annotations) ? metadata!.annotations[MODE_KEY] : undefined;
  if (annotation === 'off') return { injected: false, reason: `annotation ${MODE_KEY} is off` };
  if (annotation === undefined && namespaceMode === 'off') return { injected: false, reason: `its namespace's label ${MODE_KEY} is off` };
  if (!Array.isArray(spec.containers) || spec.containers.length === 0) return { injected: false, reason: 'it has no containers' };
  return { injected: true };
}

/**
 * Injects the sidecar into a pod's metadata and spec (a Pod, or a workload's pod
 * template), returning new objects; the inputs are not changed.
 */
export function injectPod(metadata: Obj | undefined, spec: Obj, options: InjectOptions): { metadata: Obj; spec: Obj } {
  if (!options.image) throw new NodemeshError('ERR_NM_USAGE', 'injection needs the nodemesh image', { hint: 'pass --image REPOSITORY:TAG' });
  const meta: Obj = structuredClone(metadata ?? {});
  const podSpec: Obj = structuredClone(spec);
  const apps = (podSpec.containers as Obj[]).filter((c) => c?.name !== PROXY_CONTAINER);
  const inits = (Array.isArray(podSpec.initContainers) ? (podSpec.initContainers as Obj[]) : []).filter((c) => c?.name !== INIT_CONTAINER);
  podSpec.initContainers = [...inits, initContainer(options)];
  podSpec.containers = [proxyContainer(options), ...apps];
  // The proxy's identity volumes, rebuilt in place like the containers.
  const volumes = (Array.isArray(podSpec.volumes) ? (podSpec.volumes as Obj[]) : []).filter((v) => v?.name !== TOKEN_VOLUME && v?.name !== BUNDLE_VOLUME);
  if (options.identity) volumes.push(...identityVolumes(options.identity));
  if (volumes.length > 0) podSpec.volumes = volumes;
  else delete podSpec.volumes;
  const annotations: Obj = isObj(meta.annotations) ? meta.annotations : {};
  annotations[MODE_KEY] = 'sidecar';
  const app = apps[0]?.name;
  if (annotations[DEFAULT_CONTAINER_ANNOTATION] === undefined && typeof app === 'string') annotations[DEFAULT_CONTAINER_ANNOTATION] = app;
  meta.annotations = annotations;
  return { metadata: meta, spec: podSpec };
}

/** Kinds whose pod template nodemesh inject edits, and where the template is. */
const TEMPLATE_PATHS: Record<string, string[]> = {
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  ReplicationController: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

export interface SkippedObject {
  /** kind namespace/name (or kind name), with the List item when inside one. */
  object: string;
  reason: string;
}

export interface InjectResult {
  /** The objects, in input order, injected where they should be. */
  objects: Obj[];
  injected: string[];
  skipped: SkippedObject[];
}

function describeObject(o: Obj): string {
  const ns = isObj(o.metadata) && typeof o.metadata.namespace === 'string' ? `${o.metadata.namespace}/` : '';
  const name = isObj(o.metadata) && typeof o.metadata.name === 'string' ? o.metadata.name : '(unnamed)';
  return `${String(o.kind)} ${ns}${name}`;
}

/**
 * Injects every workload among `objects` (Lists are gone through item by item). Namespace
 * objects in the input count as the pods' namespaces: a pod without the annotation in a
 * namespace labelled `nodemesh.dev/mode: off` is left alone.
 */
export function injectObjects(objects: unknown[], options: InjectOptions): InjectResult {
  const result: InjectResult = { objects: [], injected: [], skipped: [] };
  const namespaceModes = new Map<string, string>();
  const collect = (o: unknown): void => {
    if (!isObj(o)) return;
    if (o.kind === 'Namespace' && isObj(o.metadata) && typeof o.metadata.name === 'string' && isObj(o.metadata.labels) && typeof o.metadata.labels[MODE_KEY] === 'string') {
      namespaceModes.set(o.metadata.name, o.metadata.labels[MODE_KEY]);
    }
    if (Array.isArray(o.items)) o.items.forEach(collect);
  };
  objects.forEach(collect);

  const one = (o: unknown, where: string): unknown => {
    if (!isObj(o) || typeof o.kind !== 'string') {
      result.skipped.push({ object: where, reason: 'not a Kubernetes object (no kind)' });
      return o;
    }
    if (Array.isArray(o.items) && (o.kind === 'List' || o.kind.endsWith('List'))) {
      return { ...o, items: o.items.map((item: unknown, i: number) => one(item, `${where} item ${i}`)) };
    }
    const label = describeObject(o);
    let path: string[] | undefined;
    if (o.kind === 'Pod') path = [];
    else path = TEMPLATE_PATHS[o.kind];
    if (path === undefined) {
      result.skipped.push({ object: label, reason: 'not a workload' });
      return o;
    }
    let template: unknown = o;
    for (const key of path) template = isObj(template) ? template[key] : undefined;
    if (!isObj(template)) {
      result.skipped.push({ object: label, reason: `it has no pod template at ${path.join('.')}` });
      return o;
    }
    const namespace = isObj(o.metadata) && typeof o.metadata.namespace === 'string' ? o.metadata.namespace : undefined;
    const decision = podDecision(template.metadata, template.spec, namespace ? namespaceModes.get(namespace) : undefined);
    if (!decision.injected) {
      result.skipped.push({ object: label, reason: decision.reason });
      return o;
    }
    const injected = injectPod(template.metadata, template.spec, options);
    const copy = structuredClone(o);
    let target: Obj = copy;
    for (const key of path) target = target[key];
    target.metadata = injected.metadata;
    target.spec = injected.spec;
    result.injected.push(label);
    return copy;
  };
  result.objects = objects.map((o, i) => one(o, `document ${i}`)) as Obj[];
  return result;
}

/** Multi-document YAML (or JSON) in, multi-document YAML out, with what was skipped. */
export function injectYaml(text: string, options: InjectOptions, file = '<stdin>'): InjectResult & { yaml: string } {
  const docs = parseAllDocuments(text, { uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [];
  const objects: unknown[] = [];
  for (const [i, doc] of list.entries()) {
    const error = doc.errors[0];
    if (error) {
      throw new NodemeshError('ERR_NM_CONFIG_SYNTAX', `${file}: document ${i}: YAML syntax error: ${error.message.split('\n')[0]}`, { hint: 'fix the manifest; nothing was written' });
    }
    const value = doc.toJSON() as unknown;
    if (value === null || value === undefined) continue; // an empty document
    objects.push(value);
  }
  const result = injectObjects(objects, options);
  // YAML 1.1 rules for what needs quotes, as kubectl (go-yaml) reads them: `off`, `yes`,
  // `on` stay strings instead of turning into booleans.
  const yaml = result.objects.map((o) => stringify(o, { version: '1.1', lineWidth: 0 })).join('---\n');
  return { ...result, yaml };
}

/**
 * The JSON Patch (RFC 6902) that turns `pod` into its injected form, for the admission
 * webhook: whole-field `add`s (which replace existing members) of the annotations, init
 * containers and containers. Empty when nothing changes (an injected pod).
 */
export function podPatch(pod: Obj, options: InjectOptions): Array<{ op: 'add'; path: string; value: unknown }> {
  const injected = injectPod(pod.metadata, pod.spec, options);
  const ops: Array<{ op: 'add'; path: string; value: unknown }> = [];
  const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);
  if (!same(pod.metadata?.annotations, injected.metadata.annotations)) ops.push({ op: 'add', path: '/metadata/annotations', value: injected.metadata.annotations });
  if (!same(pod.spec?.initContainers, injected.spec.initContainers)) ops.push({ op: 'add', path: '/spec/initContainers', value: injected.spec.initContainers });
  if (!same(pod.spec?.containers, injected.spec.containers)) ops.push({ op: 'add', path: '/spec/containers', value: injected.spec.containers });
  if (!same(pod.spec?.volumes, injected.spec.volumes)) ops.push({ op: 'add', path: '/spec/volumes', value: injected.spec.volumes ?? [] });
  return ops;
}
