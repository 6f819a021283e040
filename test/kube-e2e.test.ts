/**
 * End to end on a real Kubernetes control plane (etcd, kube-apiserver and
 * kube-controller-manager built by scripts/install-control-plane.sh, on 127.0.0.1), the
 * simulator for the nodes' namespaces, and `nodemesh agent --kube` finding pods through
 * /proc as on a real node.
 *
 * The cluster is set up as `helm install` and a kubelet would leave it: the chart's CRDs and
 * the pinned Gateway API release's, the chart's ServiceAccount and RBAC exactly as rendered
 * (the agent authenticates with a token of its own ServiceAccount, so a verb the chart does
 * not grant fails a test), Node objects for the simulator's nodes, and Pod objects bound to
 * them whose status the test writes. EndpointSlices come from the controller manager.
 */
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ControlPlane } from '../src/kube/testing/control-plane';
import type { KubeTestClient } from '../src/kube/testing/kube-test-client';
import type { KubeObject } from '../src/kube/testing/kube-object';
import { EXAMPLE_TOPOLOGY, SimFixture, uniqueSimName, waitFor, type AgentHandle } from '../src/sim/harness';
import { adminGet } from '../src/admin/admin-client';
import { ensureHelm, template, type Obj } from './helpers/helm';
import { installChart, installTopology, KUBE_VERSION, needClusterAndSim, readyEndpoints, requireControlPlane, startControlPlane, startPod } from './helpers/kube-cluster';

const A1 = '10.244.1.11';
const B1 = '10.244.2.11';
const RELEASE_NS = 'nodemesh';
const AGENT_SA = 'nodemesh-agent';
const POLICY_API = 'nodemesh.dev/v1alpha1';
/** The status writers' Lease, as the chart's DaemonSet names it; short, so that a hand-over is quick. */
const LEASE_NAME = 'nodemesh-agent-status-writer';
const LEADER_ARGS = ['--leader-election-lease', `${RELEASE_NS}/${LEASE_NAME}`, '--leader-election-lease-seconds', '4'];

function peerOf(reply: string | undefined): string | undefined {
  return /^peer (?:::ffff:)?(\S+) /.exec(reply ?? '')?.[1];
}

type Condition = { type: string; status: string; reason: string; message: string; observedGeneration?: number };
type EventObject = KubeObject & { type: string; reason: string; message: string; source?: { component?: string; host?: string }; involvedObject: { name: string; uid: string } };

function acceptedOf(obj: KubeObject | undefined): Condition | undefined {
  return ((obj as { status?: { conditions?: Condition[] } } | undefined)?.status?.conditions ?? []).find((c) => c.type === 'Accepted');
}

function trafficPolicy(name: string, spec: Record<string, unknown>): KubeObject {
  return { apiVersion: POLICY_API, kind: 'TrafficPolicy', metadata: { name, namespace: 'demo' }, spec: { targetRef: { group: '', kind: 'Service', name: 'b' }, ...spec } };
}

describe('agent on a real Kubernetes API server', { concurrency: false, timeout: 900_000 }, () => {
  let plane: ControlPlane | undefined;
  let admin: KubeTestClient;
  let sim: SimFixture | undefined;
  let agent: AgentHandle | undefined;
  let dir: string | undefined;
  let chart: Obj[] = [];
  let agentKubeconfig: string;
  let ready = false;

  const pod = async (name: string): Promise<KubeObject> => (await admin.get('v1', 'Pod', 'demo', name))!;
  /** The agent's `Rejected` Event on a demo object, once the server lists it. */
  const rejectionEvent = async (name: string): Promise<EventObject | undefined> => {
    const events = await admin.list<EventObject>('v1', 'Event', 'demo', `fieldSelector=${encodeURIComponent(`involvedObject.name=${name}`)}`);
    return events.find((e) => e.reason === 'Rejected');
  };

  before(async () => {
    if (process.getuid?.() !== 0 || !requireControlPlane()) return;
    ensureHelm();
    dir = mkdtempSync(join(tmpdir(), 'nm-kube-'));
    plane = await startControlPlane();
    admin = plane.admin();
    chart = await installChart(admin, RELEASE_NS);
    await installTopology(admin, EXAMPLE_TOPOLOGY, dir);
    await waitFor('the EndpointSlice controller to publish a1, a2 and b1', async () => {
      const a = await readyEndpoints(admin, 'demo', 'a');
      const b = await readyEndpoints(admin, 'demo', 'b');
      return a.includes(A1) && a.includes('10.244.1.12') && b.includes(B1) ? true : undefined;
    }, 60_000);

    // The agent runs as its own ServiceAccount, with the chart's permissions and no more.
    const token = await plane.serviceAccountToken(RELEASE_NS, AGENT_SA);
    agentKubeconfig = join(dir, 'agent.kubeconfig');
    writeFileSync(agentKubeconfig, plane.kubeConfigYaml(token, AGENT_SA), { mode: 0o600 });
    sim = await new SimFixture(uniqueSimName('kube'), dir).up();
    for (const p of ['demo/a1', 'demo/a2', 'demo/b1']) await sim.startEchoServer(p);
    agent = await sim.startAgent('node1', ['--kube', '--kubeconfig', agentKubeconfig, '--capture', 'ebpf', ...LEADER_ARGS]);
    ready = true;
  }, { timeout: 300_000 });

  after(async () => {
    await agent?.stop();
    await sim?.close();
    await plane?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const need = (t: TestContext): boolean => needClusterAndSim(t, ready);

  test('the chart is accepted by the API server (server-side dry-run, strict fields)', { timeout: 120_000 }, async (t) => {
    if (!need(t)) return;
    const caBundle = Buffer.from(plane!.caPem).toString('base64');
    const valueSets = [[], [`webhook.enabled=true`, `webhook.caBundle=${caBundle}`, 'sidecarRbac.enabled=true'], ['cleanupOnUninstall.enabled=false', 'bpffsMount.enabled=true']];
    for (const sets of valueSets) {
      const r = template({ namespace: RELEASE_NS, kubeVersion: KUBE_VERSION, sets });
      assert.equal(r.status, 0, `helm template ${sets.join(' ')}: ${r.stderr}`);
      const refused: string[] = [];
      for (const o of r.objects) {
        const reply = await admin.apply(o, { dryRun: true });
        if (reply.status >= 300) refused.push(`${o.kind} ${o.metadata?.name}: HTTP ${reply.status}: ${(reply.body as { message?: string }).message}`);
      }
      assert.deepEqual(refused, [], `with --set ${sets.join(',') || '(defaults)'}`);
    }
    // The check can fail: a field the API server does not know is refused.
    const ds = structuredClone(chart.find((o) => o.kind === 'DaemonSet')!);
    ds.spec.template.spec.containers[0].imagePullPolcy = 'Always';
    const reply = await admin.apply(ds, { dryRun: true });
    // (Server-side apply answers an undeclared field with a 500 "field not declared in schema".)
    assert.ok(reply.status >= 400, JSON.stringify(reply.body));
    assert.match((reply.body as { message: string }).message, /imagePullPolcy: field not declared in schema/);
  });

  test('a TrafficPolicy that breaks the CRD\'s CEL rule is refused by the server', { timeout: 30_000 }, async (t) => {
    if (!need(t)) return;
    const reply = await admin.tryCreate(trafficPolicy('cel-broken', { loadBalancer: { type: 'RoundRobin', consistentHash: { header: 'x-user' } } }));
    assert.equal(reply.status, 422, JSON.stringify(reply.body));
    assert.match((reply.body as { message: string }).message, /consistentHash is required when type is ConsistentHash, and allowed only then/);
    assert.equal(await admin.get(POLICY_API, 'TrafficPolicy', 'demo', 'cel-broken'), undefined, 'nothing was stored');
  });

  test('an annotated Pod object is enrolled and its traffic goes through the proxy', { timeout: 60_000 }, async (t) => {
    if (!need(t)) return;
    const record = await agent!.waitPod('demo/a1', 'enrolled', 20_000);
    assert.match(record!.netnsPath!, /^\/proc\/\d+\/ns\/net$/, 'found through /proc, as on a real node');
    const r = await sim!.client('demo/a1', B1, 8080, 'via-kube');
    assert.equal(peerOf(r.reply), A1);
    assert.ok(r.local!.startsWith('127.0.0.1 '), `captured: ${JSON.stringify(r)}`);
    assert.ok((await agent!.connections('demo/a1')).some((c) => c.direction === 'outbound' && c.originalDestination === `${B1}:8080`));
    assert.equal((await agent!.pods()).some((p) => p.key === 'demo/a2'), false, 'a2 has no annotation');
    // The ClusterIP the API server holds for b, with the endpoints the controller manager published.
    const viaService = await sim!.client('demo/a1', '10.96.0.11', 80, 'via-service');
    assert.equal(peerOf(viaService.reply), A1, JSON.stringify(viaService));
  });

  test('removing the annotation releases the pod', { timeout: 60_000 }, async (t) => {
    if (!need(t)) return;
    await admin.mergePatch(await pod('a1'), { metadata: { annotations: { 'nodemesh.dev/mode': null } } });
    await agent!.waitPod('demo/a1', 'absent', 20_000);
    const r = await sim!.client('demo/a1', B1, 8080, 'released');
    assert.ok(r.local!.startsWith(`${A1} `), `direct again: ${JSON.stringify(r)}`);
  });

  test('a namespace label enrolls its pods; the pod annotation still wins', { timeout: 60_000 }, async (t) => {
    if (!need(t)) return;
    await admin.mergePatch(await pod('a1'), { metadata: { annotations: { 'nodemesh.dev/mode': 'off' } } });
    const ns = (await admin.get('v1', 'Namespace', undefined, 'demo'))!;
    await admin.mergePatch(ns, { metadata: { labels: { 'nodemesh.dev/mode': 'ambient' } } });
    await agent!.waitPod('demo/a2', 'enrolled', 20_000);
    assert.equal((await agent!.pods()).some((p) => p.key === 'demo/a1'), false, 'a1 opted out by annotation');
    const r = await sim!.client('demo/a2', B1, 8080, 'by-namespace');
    assert.ok(r.local!.startsWith('127.0.0.1 '), `a2 captured: ${JSON.stringify(r)}`);
  });

  test('deleting the pod releases it and cleans up; the controller drops it from the Service', { timeout: 60_000 }, async (t) => {
    if (!need(t)) return;
    assert.ok(await admin.delete(await pod('a2')));
    await agent!.waitPod('demo/a2', 'absent', 20_000);
    const capture = await agent!.capture();
    assert.equal((capture as unknown as { namespaces: unknown[] }).namespaces.length, 0, 'no namespace left in the pinned enrolled map');
    await waitFor('a2 to leave Service a\'s EndpointSlices', async () => (!(await readyEndpoints(admin, 'demo', 'a')).includes('10.244.1.12') ? true : undefined), 30_000);
  });

  test('TrafficPolicy status: Accepted=True written back; a conflicting one gets Accepted=False and a Warning Event', { timeout: 90_000 }, async (t) => {
    if (!need(t)) return;
    await admin.create(trafficPolicy('b-first', { connectionPool: { http: { maxPendingRequests: 10 } } }));
    const first = await waitFor('b-first to be Accepted', async () => {
      const c = acceptedOf(await admin.get(POLICY_API, 'TrafficPolicy', 'demo', 'b-first'));
      return c?.status === 'True' ? c : undefined;
    }, 30_000);
    assert.equal(first.observedGeneration, 1);
    // creationTimestamp has whole seconds; the names order the two the same way if they tie.
    await admin.create(trafficPolicy('b-second', { connectionPool: { http: { maxPendingRequests: 20 } } }));
    const second = await waitFor('b-second to be rejected', async () => {
      const c = acceptedOf(await admin.get(POLICY_API, 'TrafficPolicy', 'demo', 'b-second'));
      return c?.status === 'False' ? c : undefined;
    }, 30_000);
    assert.equal(second.reason, 'Invalid');
    assert.match(second.message, /conflict: Service demo\/b already has TrafficPolicy demo\/b-first/);
    const stored = (await admin.get(POLICY_API, 'TrafficPolicy', 'demo', 'b-second'))!;
    const event = await waitFor('the Warning Event on b-second', () => rejectionEvent('b-second'), 30_000);
    assert.equal(event.type, 'Warning');
    assert.equal(event.reason, 'Rejected');
    assert.equal(event.involvedObject.uid, stored.metadata!.uid);
    assert.deepEqual(event.source, { component: 'nodemesh-agent', host: 'node1' });
    assert.match(event.message, /conflict/);
    // The first one is untouched by the second's rejection.
    assert.equal(acceptedOf(await admin.get(POLICY_API, 'TrafficPolicy', 'demo', 'b-first'))?.status, 'True');
    for (const name of ['b-second', 'b-first']) assert.ok(await admin.delete({ apiVersion: POLICY_API, kind: 'TrafficPolicy', metadata: { name, namespace: 'demo' } }));
  });

  test('PeerAuthentication status: a policy nodemesh enforces is Accepted; one it cannot is Accepted=False with the field, and an API-invalid mode never gets stored', { timeout: 90_000 }, async (t) => {
    if (!need(t)) return;
    const pa = (name: string, spec: Record<string, unknown>): KubeObject => ({ apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name, namespace: 'demo' }, spec } as KubeObject);
    await admin.create(pa('strict', { mtls: { mode: 'STRICT' } }));
    t.after(async () => { for (const name of ['strict', 'ports-without-selector']) await admin.delete(pa(name, {})); });
    // Valid for the CRD's schema, not for nodemesh (as for Istio): a port needs a selector.
    await admin.create(pa('ports-without-selector', { portLevelMtls: { '8080': { mode: 'PERMISSIVE' } } }));
    const acceptedNow = async (name: string) => acceptedOf(await admin.get('security.istio.io/v1', 'PeerAuthentication', 'demo', name));
    await waitFor('strict to be Accepted', async () => ((await acceptedNow('strict'))?.status === 'True' ? true : undefined), 30_000);
    const refused = await waitFor('ports-without-selector to be rejected', async () => {
      const c = await acceptedNow('ports-without-selector');
      return c?.status === 'False' ? c : undefined;
    }, 30_000);
    assert.match(refused.message, /spec\.portLevelMtls: applies only to a policy with spec\.selector\.matchLabels/);
    // The CRD refuses a mode outside its enum before any agent sees it.
    const badMode = await admin.tryCreate(pa('lowercase', { mtls: { mode: 'strict' } }));
    assert.equal(badMode.status, 422, JSON.stringify(badMode.body));
  });

  test('AuthorizationPolicy status: a policy nodemesh enforces is Accepted; one it cannot enforce is Accepted=False with the field (never ignored)', { timeout: 90_000 }, async (t) => {
    if (!need(t)) return;
    const ap = (name: string, spec: Record<string, unknown>): KubeObject => ({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name, namespace: 'demo' }, spec } as KubeObject);
    await admin.create(ap('deny-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] }));
    await admin.create(ap('jwt-only', { action: 'DENY', rules: [{ from: [{ source: { notRequestPrincipals: ['*'] } }] }] }));
    t.after(async () => { for (const name of ['deny-admin', 'jwt-only']) await admin.delete(ap(name, {})); });
    const acceptedNow = async (name: string) => acceptedOf(await admin.get('security.istio.io/v1', 'AuthorizationPolicy', 'demo', name));
    await waitFor('deny-admin to be Accepted', async () => ((await acceptedNow('deny-admin'))?.status === 'True' ? true : undefined), 30_000);
    const refused = await waitFor('jwt-only to be rejected', async () => {
      const c = await acceptedNow('jwt-only');
      return c?.status === 'False' ? c : undefined;
    }, 30_000);
    assert.match(refused.message, /spec\.rules\[0\]\.from\[0\]\.source\.notRequestPrincipals/);
  });

  test('HTTPRoute status: Accepted and ResolvedRefs per Service parent, with the spec\'s reasons; fixing the route clears them', { timeout: 90_000 }, async (t) => {
    if (!need(t)) return;
    const ROUTE_API = 'gateway.networking.k8s.io/v1';
    const httpRoute = (name: string, parent: string, backend: string): KubeObject => ({
      apiVersion: ROUTE_API, kind: 'HTTPRoute', metadata: { name, namespace: 'demo' },
      spec: { parentRefs: [{ group: '', kind: 'Service', name: parent }], rules: [{ backendRefs: [{ name: backend, port: 80 }] }] },
    } as KubeObject);
    const names = ['route-good', 'route-no-backend', 'route-no-parent'];
    t.after(async () => { for (const name of names) await admin.delete(httpRoute(name, 'b', 'b')); });
    await admin.create(httpRoute('route-good', 'b', 'b'));
    await admin.create(httpRoute('route-no-backend', 'b', 'b-gone'));
    await admin.create(httpRoute('route-no-parent', 'b-nowhere', 'b'));
    /** nodemesh's entry: "Accepted=True/Accepted ResolvedRefs=False/BackendNotFound", once written. */
    const summary = async (name: string): Promise<string | undefined> => {
      const route = await admin.get(ROUTE_API, 'HTTPRoute', 'demo', name);
      const parents = ((route?.status as { parents?: Array<{ controllerName: string; parentRef: { name: string }; conditions: Condition[] }> } | undefined)?.parents ?? [])
        .filter((p) => p.controllerName === 'nodemesh.dev/mesh');
      return parents.length === 0 ? undefined : parents.map((p) => `${p.parentRef.name}: ${p.conditions.map((c) => `${c.type}=${c.status}/${c.reason}`).join(' ')}`).join('; ');
    };
    const statusOf = (name: string, want: string) => waitFor(`${name}'s status to be ${want}`, async () => ((await summary(name)) === want ? true : undefined), 30_000);
    // The API server accepted the status (its schema checks reasons, controllerName and parentRef).
    await statusOf('route-good', 'b: Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs');
    await statusOf('route-no-backend', 'b: Accepted=True/Accepted ResolvedRefs=False/BackendNotFound');
    await statusOf('route-no-parent', 'b-nowhere: Accepted=False/NoMatchingParent ResolvedRefs=True/ResolvedRefs');
    const noBackend = await admin.get(ROUTE_API, 'HTTPRoute', 'demo', 'route-no-backend');
    const resolved = ((noBackend!.status as { parents: Array<{ conditions: Condition[] }> }).parents[0]!.conditions).find((c) => c.type === 'ResolvedRefs')!;
    assert.match(resolved.message, /Service demo\/b-gone does not exist/);
    // Fixing the objects clears the conditions.
    await admin.mergePatch(noBackend!, { spec: { rules: [{ backendRefs: [{ name: 'b', port: 80 }] }] } });
    await admin.mergePatch((await admin.get(ROUTE_API, 'HTTPRoute', 'demo', 'route-no-parent'))!, { spec: { parentRefs: [{ group: '', kind: 'Service', name: 'b' }] } });
    await statusOf('route-no-backend', 'b: Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs');
    await statusOf('route-no-parent', 'b: Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs');
  });

  test('an unknown annotation value and a Service without endpoints each get a clear message', { timeout: 60_000 }, async (t) => {
    if (!need(t)) return;
    await admin.mergePatch(await pod('a1'), { metadata: { annotations: { 'nodemesh.dev/mode': 'ambient' } } });
    await agent!.waitPod('demo/a1', 'enrolled', 20_000);
    await admin.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'empty', namespace: 'demo' }, spec: { selector: { app: 'nobody' }, clusterIP: '10.96.0.99', ports: [{ port: 80, targetPort: 8080 }] } });
    // A pod of this node (the agent watches only its own node's pods) with a typo.
    await startPod(admin, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'a3', namespace: 'demo', annotations: { 'nodemesh.dev/mode': 'ambiant' } }, spec: { nodeName: 'node1', containers: [{ name: 'app', image: 'x' }] }, status: { podIP: '10.244.1.13', podIPs: [{ ip: '10.244.1.13' }] } } as KubeObject);
    const config = await waitFor('the typo to be rejected', async () => {
      const c = await adminGet<{ rejected: Array<{ reason: string; object: string }> }>(agent!.socket, '/debug/config');
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

  test('a permission the chart does not grant makes the agent fail with a clear error', { timeout: 90_000 }, async (t) => {
    if (!need(t)) return;
    // The chart's ClusterRole, less list/watch on EndpointSlices, bound to a second ServiceAccount.
    const role = structuredClone(chart.find((o) => o.kind === 'ClusterRole' && o.metadata.name === AGENT_SA)!);
    role.metadata = { name: 'nodemesh-agent-no-slices' };
    role.rules = role.rules.filter((r: { resources: string[] }) => !r.resources.includes('endpointslices'));
    await admin.create({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'no-slices', namespace: RELEASE_NS } });
    await admin.create(role);
    await admin.create({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'nodemesh-agent-no-slices' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'nodemesh-agent-no-slices' }, subjects: [{ kind: 'ServiceAccount', name: 'no-slices', namespace: RELEASE_NS }] });
    const kubeconfig = join(dir!, 'no-slices.kubeconfig');
    writeFileSync(kubeconfig, plane!.kubeConfigYaml(await plane!.serviceAccountToken(RELEASE_NS, 'no-slices'), 'no-slices'), { mode: 0o600 });
    // On node2, beside node1's agent: a second agent with the reduced role.
    const child = sim!.spawnAgent('node2', ['--kube', '--kubeconfig', kubeconfig, '--capture', 'ebpf']);
    try {
      await waitFor('the agent to report the missing permission', () => (/check the agent's RBAC: it needs list and watch on discovery\.k8s\.io\/endpointslices/.test(child.log) ? true : undefined), 30_000);
      assert.match(child.log, /HTTP 403/);
      // The API server's own words, passed on (the log is JSON: its quotes are escaped).
      assert.match(child.log, /endpointslices\.discovery\.k8s\.io is forbidden: User \\"system:serviceaccount:nodemesh:no-slices\\" cannot list resource \\"endpointslices\\"/);
    } finally {
      await child.stop();
    }
  });

  test('only the Lease holder writes statuses; when it stops, another agent takes over', { timeout: 120_000 }, async (t) => {
    if (!need(t)) return;
    type Lease = KubeObject & { spec: { holderIdentity?: string; leaseTransitions?: number } };
    const lease = async () => (await admin.get<Lease>('coordination.k8s.io/v1', 'Lease', RELEASE_NS, LEASE_NAME))?.spec;
    await waitFor('node1\'s agent to hold the Lease', async () => ((await lease())?.holderIdentity?.startsWith('node1_') ? true : undefined), 20_000);
    // node2's agent, same ServiceAccount and Lease: a follower.
    const second = await sim!.startAgent('node2', ['--kube', '--kubeconfig', agentKubeconfig, '--capture', 'ebpf', ...LEADER_ARGS]);
    try {
      const rejectedBy = async (name: string): Promise<string | undefined> => (await rejectionEvent(name))?.source?.host;
      await admin.create(trafficPolicy('lease-first', { connectionPool: { http: { maxPendingRequests: 10 } } }));
      await admin.create(trafficPolicy('lease-second', { connectionPool: { http: { maxPendingRequests: 20 } } }));
      assert.equal(await waitFor('the rejection Event', () => rejectedBy('lease-second'), 30_000), 'node1', 'written by the holder');
      assert.match((await lease())?.holderIdentity ?? '', /^node1_/, 'node2 never took the Lease while node1 renewed it');
      // Only one agent wrote: every write to the policy's status came from one manager, once.
      const stored = (await admin.get(POLICY_API, 'TrafficPolicy', 'demo', 'lease-second'))!;
      assert.equal(acceptedOf(stored)?.status, 'False');

      // The holder stops (a rollout): it releases the Lease and node2 takes over at once.
      const transitions = (await lease())?.leaseTransitions ?? 0;
      assert.equal(await agent!.stop(), 0);
      agent = undefined;
      await waitFor('node2\'s agent to hold the Lease', async () => ((await lease())?.holderIdentity?.startsWith('node2_') ? true : undefined), 20_000);
      assert.ok(((await lease())?.leaseTransitions ?? 0) > transitions, 'a new holder counts a transition');
      await admin.create(trafficPolicy('lease-third', { connectionPool: { http: { maxPendingRequests: 30 } } }));
      assert.equal(await waitFor('the new holder\'s rejection Event', () => rejectedBy('lease-third'), 30_000), 'node2');
      for (const name of ['lease-third', 'lease-second', 'lease-first']) await admin.delete({ apiVersion: POLICY_API, kind: 'TrafficPolicy', metadata: { name, namespace: 'demo' } });
    } finally {
      await second.stop();
    }
  });

  test('uninstall: with the chart uninstall flag set, a stopping agent releases every pod and leaves the node clean', { timeout: 90_000 }, async (t) => {
    if (!need(t)) return;
    await agent?.stop();
    const lifecycle = chart.find((o) => o.kind === 'ConfigMap' && /lifecycle/.test(o.metadata.name))!;
    await admin.create(lifecycle);
    const flag = `${RELEASE_NS}/${lifecycle.metadata.name}`;
    agent = await sim!.startAgent('node1', ['--kube', '--kubeconfig', agentKubeconfig, '--capture', 'ebpf', ...LEADER_ARGS, '--release-on-exit-configmap', flag]);
    await agent.waitPod('demo/a1', 'enrolled', 20_000);
    const member = () => admin.get('nodemesh.dev/v1alpha1', 'MeshMember', 'demo', 'a1');
    await waitFor('the agent to publish a1 as a MeshMember', member, 20_000);
    const pinDir = `/sys/fs/bpf/nodemesh/${agent.instance}`;
    assert.ok(existsSync(pinDir), 'capture is pinned while the agent runs');
    // What the chart's pre-delete hook does.
    await admin.mergePatch(lifecycle, { data: { uninstalling: 'true' } });
    await waitFor('the agent to see the flag', () => agent!.log.includes('uninstall flag changed'), 10_000);
    assert.equal(await agent.stop(), 0);
    assert.equal(existsSync(pinDir), false, 'pinned maps, links and programs removed');
    assert.equal(await member(), undefined, 'the node\'s MeshMembers removed');
    assert.equal(existsSync(`/run/nodemesh/${agent.instance}/ebpf-capture.json`), false, 'run state removed');
    const r = await sim!.client('demo/a1', B1, 8080, 'after-uninstall');
    assert.ok(r.local!.startsWith(`${A1} `), `direct after uninstall: ${JSON.stringify(r)}`);
    agent = undefined;
  });
});
