/**
 * End to end on "Kubernetes": a fake API server speaking the real list/watch protocol,
 * the simulator for the nodes' namespaces, and `nodemesh agent --kube` finding pods
 * through /proc as on a real node. Annotating a Pod object enrolls the pod, removing the
 * annotation releases it, deleting it cleans up, a namespace label enrolls its pods, and
 * a malformed TrafficPolicy gets a status condition and an Event.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { parseK8sYaml } from '../src/config/k8s-yaml';
import { FakeApiServer, kubeConfigFor, type KubeObject } from '../src/kube/testing/fake-apiserver';
import { endpointSlice } from '../src/kube/testing/cluster-objects';
import { EXAMPLE_TOPOLOGY, SimFixture, uniqueSimName, waitFor, type AgentHandle } from '../src/sim/harness';
import { requireRoot } from './helpers/privileges';

const A1 = '10.244.1.11';
const B1 = '10.244.2.11';

function peerOf(reply: string | undefined): string | undefined {
  return /^peer (?:::ffff:)?(\S+) /.exec(reply ?? '')?.[1];
}

/** The example topology as objects, each Pod with a fixed uid (the simulator names pod cgroups by it). */
function topologyObjects(): KubeObject[] {
  const parsed = parseK8sYaml(readFileSync(EXAMPLE_TOPOLOGY, 'utf8'), EXAMPLE_TOPOLOGY);
  let n = 0;
  return parsed.objects.map((raw) => {
    const obj = structuredClone(raw.object) as unknown as KubeObject & { metadata: Record<string, unknown> };
    if (obj.kind === 'Pod') obj.metadata.uid = `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`;
    return obj as KubeObject;
  });
}

describe('agent on the Kubernetes API', { concurrency: false, timeout: 600_000 }, () => {
  let api: FakeApiServer | undefined;
  let sim: SimFixture | undefined;
  let agent: AgentHandle | undefined;
  let dir: string;
  let objects: KubeObject[];

  const podObject = (name: string) => api!.get('v1', 'Pod', 'demo', name)!;

  before(async () => {
    if (process.getuid?.() !== 0) return;
    dir = mkdtempSync(join(tmpdir(), 'nm-kube-'));
    objects = topologyObjects();
    writeFileSync(join(dir, 'topology.yaml'), objects.map((o) => stringify(o)).join('---\n'));
    api = await FakeApiServer.start();
    for (const o of objects) api.create(structuredClone(o));
    // What the EndpointSlice controller would write for Services a and b.
    api.create(endpointSlice('a-x1', 'a', { namespace: 'demo', ports: [{ name: 'http', port: 8080 }], endpoints: [{ ip: A1, pod: 'a1', node: 'node1', ready: true }, { ip: '10.244.1.12', pod: 'a2', node: 'node1', ready: true }] }));
    api.create(endpointSlice('b-x1', 'b', { namespace: 'demo', ports: [{ name: 'http', port: 8080 }], endpoints: [{ ip: B1, pod: 'b1', node: 'node2', ready: true }] }));
    writeFileSync(join(dir, 'kubeconfig'), kubeConfigFor(api).exportConfig());
    sim = await new SimFixture(uniqueSimName('kube'), dir).up();
    // Pods have processes, as a real pod's sandbox and containers: that is what the
    // agent's /proc locator finds.
    for (const pod of ['demo/a1', 'demo/a2', 'demo/b1']) await sim.startEchoServer(pod);
    agent = await sim.startAgent('node1', ['--kube', '--kubeconfig', join(dir, 'kubeconfig'), '--capture', 'ebpf']);
  });

  after(async () => {
    await agent?.stop();
    await sim?.close();
    await api?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('an annotated Pod object is enrolled and its traffic goes through the proxy', { timeout: 60_000 }, async (t) => {
    if (!requireRoot(t)) return;
    const record = await agent!.waitPod('demo/a1', 'enrolled', 20_000);
    assert.match(record!.netnsPath!, /^\/proc\/\d+\/ns\/net$/, 'found through /proc, as on a real node');
    const r = await sim!.client('demo/a1', B1, 8080, 'via-kube');
    assert.equal(peerOf(r.reply), A1);
    assert.ok(r.local!.startsWith('127.0.0.1 '), `captured: ${JSON.stringify(r)}`);
    assert.ok((await agent!.connections('demo/a1')).some((c) => c.direction === 'outbound' && c.originalDestination === `${B1}:8080`));
    assert.equal((await agent!.pods()).some((p) => p.key === 'demo/a2'), false, 'a2 has no annotation');
  });

  test('removing the annotation releases the pod', { timeout: 60_000 }, async (t) => {
    if (!requireRoot(t)) return;
    const pod = podObject('a1');
    delete (pod.metadata!.annotations as Record<string, string>)['nodemesh.dev/mode'];
    api!.update(pod);
    await agent!.waitPod('demo/a1', 'absent', 20_000);
    const r = await sim!.client('demo/a1', B1, 8080, 'released');
    assert.ok(r.local!.startsWith(`${A1} `), `direct again: ${JSON.stringify(r)}`);
  });

  test('a namespace label enrolls its pods; the pod annotation still wins', { timeout: 60_000 }, async (t) => {
    if (!requireRoot(t)) return;
    const a1 = podObject('a1');
    (a1.metadata!.annotations as Record<string, string>)['nodemesh.dev/mode'] = 'off';
    api!.update(a1);
    const ns = api!.get('v1', 'Namespace', undefined, 'demo')!;
    ns.metadata!.labels = { ...(ns.metadata!.labels ?? {}), 'nodemesh.dev/mode': 'ambient' };
    api!.update(ns);
    await agent!.waitPod('demo/a2', 'enrolled', 20_000);
    assert.equal((await agent!.pods()).some((p) => p.key === 'demo/a1'), false, 'a1 opted out by annotation');
    const r = await sim!.client('demo/a2', B1, 8080, 'by-namespace');
    assert.ok(r.local!.startsWith('127.0.0.1 '), `a2 captured: ${JSON.stringify(r)}`);
  });

  test('deleting the pod releases it and cleans up', { timeout: 60_000 }, async (t) => {
    if (!requireRoot(t)) return;
    assert.ok(api!.delete(podObject('a2')));
    await agent!.waitPod('demo/a2', 'absent', 20_000);
    const capture = await agent!.capture();
    assert.equal((capture as unknown as { namespaces: unknown[] }).namespaces.length, 0, 'no namespace left in the pinned enrolled map');
  });

  test('a malformed TrafficPolicy gets Accepted=False and a Warning Event; other objects are unaffected', { timeout: 60_000 }, async (t) => {
    if (!requireRoot(t)) return;
    api!.create({
      apiVersion: 'nodemesh.dev/v1alpha1',
      kind: 'TrafficPolicy',
      metadata: { name: 'bad', namespace: 'demo' },
      spec: { targetRef: { group: '', kind: 'Service', name: 'b' }, outlierDetection: { maxEjectionPercent: 250 } },
    } as KubeObject);
    const patch = await waitFor('a status patch for demo/bad', () => api!.statusPatches.find((p) => p.name === 'bad'), 20_000);
    assert.match(JSON.stringify(patch.patch), /"Accepted".*"False"|"status":"False".*Accepted/s);
    assert.match(JSON.stringify(patch.patch), /maxEjectionPercent/);
    const event = await waitFor('a Warning Event', () => api!.eventWrites.find((e) => JSON.stringify(e.body).includes('maxEjectionPercent')), 20_000);
    assert.match(JSON.stringify(event.body), /Warning/);
    // The mesh keeps working: b1 is still reachable by a pod that opts in again.
    const a1 = podObject('a1');
    (a1.metadata!.annotations as Record<string, string>)['nodemesh.dev/mode'] = 'ambient';
    api!.update(a1);
    await agent!.waitPod('demo/a1', 'enrolled', 20_000);
    const r = await sim!.client('demo/a1', '10.96.0.11', 80, 'still-routed');
    assert.equal(peerOf(r.reply), A1, `${JSON.stringify(r)} ${JSON.stringify(await agent!.connections('demo/a1'))}`);
  });

  test('an unknown annotation value and a Service without endpoints each get a clear message', { timeout: 60_000 }, async (t) => {
    if (!requireRoot(t)) return;
    api!.create({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'empty', namespace: 'demo' },
      spec: { selector: { app: 'nobody' }, clusterIP: '10.96.0.99', ports: [{ port: 80, targetPort: 8080 }] },
    } as KubeObject);
    // A pod of this node (the agent watches only its own node's pods) with a typo.
    api!.create({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'a3', namespace: 'demo', annotations: { 'nodemesh.dev/mode': 'ambiant' } },
      spec: { nodeName: 'node1', containers: [{ name: 'app', image: 'x' }] },
      status: { phase: 'Running', podIP: '10.244.1.13', podIPs: [{ ip: '10.244.1.13' }] },
    } as KubeObject);
    const config = await waitFor('the typo to be rejected', async () => {
      const c = await (await import('../src/admin/admin-client')).adminGet<{ rejected: Array<{ reason: string; object: string }> }>(agent!.socket, '/debug/config');
      return c.rejected.find((r) => /ambiant/.test(r.reason)) ? c : undefined;
    }, 20_000);
    assert.ok(config.rejected.some((r) => /nodemesh\.dev\/mode/.test(r.reason) && /ambient/.test(r.reason)), JSON.stringify(config.rejected));
    await waitFor('the empty Service to be known', async () => {
      const r = await sim!.client('demo/a1', '10.96.0.99', 80, 'nobody-home');
      return r.error ? r : undefined;
    }, 20_000);
    const refused = (await agent!.connections('demo/a1')).find((c) => c.originalDestination === '10.96.0.99:80');
    assert.match(refused?.error ?? '', /service demo\/empty has no ready endpoints/);
  });

  test('uninstall: with the chart uninstall flag set, a stopping agent releases every pod and leaves the node clean', { timeout: 90_000 }, async (t) => {
    if (!requireRoot(t)) return;
    await agent!.stop();
    api!.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'nodemesh-agent-lifecycle', namespace: 'nodemesh' }, data: { uninstalling: 'false' } } as KubeObject);
    agent = await sim!.startAgent('node1', ['--kube', '--kubeconfig', join(dir, 'kubeconfig'), '--capture', 'ebpf', '--release-on-exit-configmap', 'nodemesh/nodemesh-agent-lifecycle']);
    await agent.waitPod('demo/a1', 'enrolled', 20_000);
    const pinDir = `/sys/fs/bpf/nodemesh/${agent.instance}`;
    assert.ok(existsSync(pinDir), 'capture is pinned while the agent runs');
    // What the chart's pre-delete hook does.
    const cm = api!.get('v1', 'ConfigMap', 'nodemesh', 'nodemesh-agent-lifecycle')!;
    (cm as unknown as { data: Record<string, string> }).data = { uninstalling: 'true' };
    api!.update(cm);
    await waitFor('the agent to see the flag', () => agent!.log.includes('uninstall flag changed'), 10_000);
    assert.equal(await agent.stop(), 0);
    assert.equal(existsSync(pinDir), false, 'pinned maps, links and programs removed');
    assert.equal(existsSync(`/run/nodemesh/${agent.instance}/ebpf-capture.json`), false, 'run state removed');
    const r = await sim!.client('demo/a1', B1, 8080, 'after-uninstall');
    assert.ok(r.local!.startsWith(`${A1} `), `direct after uninstall: ${JSON.stringify(r)}`);
    agent = undefined;
  });
});
