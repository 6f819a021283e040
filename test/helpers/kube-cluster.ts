import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import type { TestContext } from 'node:test';
import { ControlPlane, controlPlaneMissing, CONTROL_PLANE_BIN } from '../../src/kube/testing/control-plane';
import type { KubeTestClient } from '../../src/kube/testing/kube-test-client';
import type { KubeObject } from '../../src/kube/testing/kube-object';
import { waitFor } from '../../src/sim/harness';
import assert from 'node:assert/strict';
import { CHART, needHelm, template, type Obj } from './helm';
import { isCI, requireRoot } from './privileges';

/**
 * What the Kubernetes suites do on a real control plane (src/kube/testing/control-plane.ts):
 * install the CRDs, the chart's RBAC, and mirror the simulator's nodes and pods as Node and
 * Pod objects whose status the test writes, as a kubelet would.
 */

export const GATEWAY_API_CRDS = join(CONTROL_PLANE_BIN, '..', 'gateway-api-crds');
/** The Kubernetes release scripts/install-control-plane.sh builds (for `helm template --kube-version`). */
export const KUBE_VERSION = '1.37.2';

/** True when the control plane can run; skips locally, fails under CI=true, when it cannot. */
export function requireControlPlane(t?: TestContext): boolean {
  const missing = controlPlaneMissing() ?? (existsSync(join(GATEWAY_API_CRDS, 'VERSION')) ? undefined : `no Gateway API CRDs in ${GATEWAY_API_CRDS}: run scripts/install-control-plane.sh`);
  if (!missing) return true;
  if (isCI) throw new Error(`the real API server is needed and CI=true forbids skipping: ${missing}`);
  t?.skip(missing);
  return false;
}

export function yamlObjects(file: string): KubeObject[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJSON() as KubeObject | null).filter((o): o is KubeObject => o !== null);
}

/** The CRDs a cluster running nodemesh has: the chart's own and the pinned Gateway API release's standard channel. */
export function meshCrds(): KubeObject[] {
  const files = [
    ...readdirSync(join(CHART, 'crds')).filter((f) => f.endsWith('.yaml')).map((f) => join(CHART, 'crds', f)),
    ...readdirSync(GATEWAY_API_CRDS).filter((f) => f.endsWith('.yaml')).sort().map((f) => join(GATEWAY_API_CRDS, f)),
  ];
  return files.flatMap(yamlObjects);
}

/** Creates the objects (server-side apply) and waits until every CRD among them is Established. */
export async function installAll(client: KubeTestClient, objects: KubeObject[]): Promise<void> {
  for (const o of objects) {
    const reply = await client.apply(o);
    if (reply.status >= 300) throw new Error(`applying ${o.kind} ${o.metadata?.name}: HTTP ${reply.status}: ${JSON.stringify(reply.body)}`);
  }
  for (const crd of objects.filter((o) => o.kind === 'CustomResourceDefinition')) {
    await waitFor(`CRD ${crd.metadata!.name} to be Established`, async () => {
      const found = await client.get<KubeObject & { status?: { conditions?: Array<{ type: string; status: string }> } }>('apiextensions.k8s.io/v1', 'CustomResourceDefinition', undefined, crd.metadata!.name!);
      return found?.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ? true : undefined;
    }, 30_000);
  }
  client.forgetDiscovery();
}

const RBAC_KINDS = new Set(['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding']);

/** The chart's identity and permissions, exactly as rendered. */
export function rbacOf(rendered: KubeObject[]): KubeObject[] {
  return rendered.filter((o) => RBAC_KINDS.has(o.kind ?? '') && !o.metadata?.annotations?.['helm.sh/hook']);
}

/** A kubelet's status for a running pod whose containers are ready. */
export function runningStatus(ips: string[], ready = true): Record<string, unknown> {
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const condition = (type: string) => ({ type, status: ready ? 'True' : 'False', lastTransitionTime: now });
  return {
    phase: 'Running',
    podIP: ips[0],
    podIPs: ips.map((ip) => ({ ip })),
    startTime: now,
    conditions: [condition('PodScheduled'), condition('Initialized'), condition('ContainersReady'), condition('Ready')],
  };
}

/** A Node object as a kubelet registers it, Ready. */
export async function registerNode(client: KubeTestClient, name: string): Promise<void> {
  const node = await client.create({ apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'kubernetes.io/hostname': name } } });
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  await client.mergePatch(node, { status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'simulated', lastHeartbeatTime: now, lastTransitionTime: now }] } }, 'status');
}

/** Waits for the ServiceAccount controller to create `default` in a namespace (pods need it). */
export async function waitDefaultServiceAccount(client: KubeTestClient, namespace: string): Promise<void> {
  await waitFor(`ServiceAccount ${namespace}/default`, async () => ((await client.get('v1', 'ServiceAccount', namespace, 'default')) ? true : undefined), 30_000);
}

/**
 * A pod as the scheduler and kubelet would leave it: created bound to its node (the status
 * in `pod` is dropped by the server on create), then its status written. Resolves with the
 * object as stored (its uid assigned by the server).
 */
export async function startPod(client: KubeTestClient, pod: KubeObject): Promise<KubeObject> {
  const { status, ...spec } = pod as KubeObject & { status?: { podIPs?: Array<{ ip: string }>; podIP?: string } };
  const created = await client.create(spec);
  const ips = status?.podIPs?.map((p) => p.ip) ?? (status?.podIP ? [status.podIP] : []);
  return client.mergePatch(created, { status: runningStatus(ips) }, 'status');
}

type Slice = KubeObject & { addressType: string; endpoints?: Array<{ addresses: string[]; conditions?: { ready?: boolean } }> };

/** The ready addresses of a Service's EndpointSlices (as the EndpointSlice controller wrote them). */
export async function readyEndpoints(client: KubeTestClient, namespace: string, service: string): Promise<string[]> {
  const slices = await client.list<Slice>('discovery.k8s.io/v1', 'EndpointSlice', namespace, `labelSelector=${encodeURIComponent(`kubernetes.io/service-name=${service}`)}`);
  return slices.flatMap((s) => (s.endpoints ?? []).filter((e) => e.conditions?.ready !== false).flatMap((e) => e.addresses)).sort();
}

export async function startControlPlane(options?: Parameters<typeof ControlPlane.start>[0]): Promise<ControlPlane> {
  const started = Date.now();
  const plane = await ControlPlane.start(options);
  process.stderr.write(`# control plane ready in ${((Date.now() - started) / 1000).toFixed(1)} s at ${plane.url}\n`);
  return plane;
}


/**
 * For a suite on the control plane and the simulator: false (skipped) without root, the
 * control plane or helm; a failed before() (`ready` false) fails the test instead of
 * reading as a pass.
 */
export function needClusterAndSim(t: TestContext, ready: boolean): boolean {
  if (!requireRoot(t) || !requireControlPlane(t) || !needHelm(t)) return false;
  assert.ok(ready, 'the set-up (before) failed: see its error');
  return true;
}

/**
 * `helm install` as far as a test needs it: the chart's CRDs and the pinned Gateway API's,
 * the release namespace, and the chart's RBAC (plus objects of `extraKinds`) exactly as
 * rendered. Resolves with every rendered object.
 */
export async function installChart(client: KubeTestClient, namespace: string, extraKinds: readonly string[] = []): Promise<Obj[]> {
  await installAll(client, meshCrds());
  const rendered = template({ namespace, kubeVersion: KUBE_VERSION });
  assert.equal(rendered.status, 0, rendered.stderr);
  await client.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
  await installAll(client, [...rbacOf(rendered.objects), ...rendered.objects.filter((o) => extraKinds.includes(o.kind))]);
  return rendered.objects;
}

/**
 * The cluster a simulator topology describes, as a kubelet and the scheduler would leave
 * it: its Namespaces, Nodes node1 and node2, its Pods bound and running (`adjust` may edit
 * one first), its Services. The server assigns the pods' uids, which the simulator names
 * pod cgroups by, so the topology is written to `dir`/topology.yaml after, with them.
 */
export async function installTopology(client: KubeTestClient, file: string, dir: string, adjust: (pod: KubeObject) => void = () => undefined): Promise<KubeObject[]> {
  const parsed = parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJSON() as KubeObject).filter((o) => o && o.kind);
  for (const ns of parsed.filter((o) => o.kind === 'Namespace' && o.metadata?.name !== 'default')) await client.create(ns);
  for (const node of ['node1', 'node2']) await registerNode(client, node);
  await waitDefaultServiceAccount(client, 'demo');
  for (const p of parsed.filter((o) => o.kind === 'Pod')) {
    adjust(p);
    const stored = await startPod(client, p);
    p.metadata!.uid = stored.metadata!.uid;
  }
  for (const s of parsed.filter((o) => o.kind === 'Service')) await client.create(s);
  writeFileSync(join(dir, 'topology.yaml'), parsed.map((o) => stringify(o)).join('---\n'));
  return parsed;
}
