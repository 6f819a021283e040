/**
 * mTLS across nodes in `--kube` mode, on a real Kubernetes control plane and the
 * simulator's two nodes. An agent watches only its own node's Pods, so it learns where the
 * other nodes' enrolled pods are, and who they are, from the MeshMember objects their
 * agents publish. Each agent authenticates with a token bound to its own pod (as the
 * kubelet mounts it), and the chart's ValidatingAdmissionPolicy, installed as rendered,
 * lets it publish members of its own node only.
 */
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memberObjectOf } from '../src/config/mesh-member';
import type { ControlPlane } from '../src/kube/testing/control-plane';
import type { KubeObject } from '../src/kube/testing/kube-object';
import type { KubeTestClient } from '../src/kube/testing/kube-test-client';
import { EXAMPLE_TOPOLOGY, SimFixture, uniqueSimName, waitFor, type AgentHandle } from '../src/sim/harness';
import { simAgentIdentityArgs } from '../src/sim/identity';
import { ensureHelm } from './helpers/helm';
import { installChart, installTopology, needClusterAndSim, requireControlPlane, startControlPlane, startPod, waitDefaultServiceAccount } from './helpers/kube-cluster';
import { metricSum } from './helpers/telemetry';

const A1 = '10.244.1.11';
const B1 = '10.244.2.11';
const RELEASE_NS = 'nodemesh';
const AGENT_SA = 'nodemesh-agent';
const MEMBERS = 'nodemesh.dev/v1alpha1';

/** The echo server's view of who connected: "peer ADDRESS ...". */
function peerOf(reply: string | undefined): string | undefined {
  return /^peer (?:::ffff:)?(\S+) /.exec(reply ?? '')?.[1];
}

type Member = KubeObject & { spec: { nodeName: string; serviceAccount: string; ips: string[] } };

describe('mTLS across nodes with the Kubernetes source', { concurrency: false, timeout: 600_000 }, () => {
  let plane: ControlPlane | undefined;
  let admin: KubeTestClient;
  let sim: SimFixture | undefined;
  let dir = '';
  const agents = new Map<string, AgentHandle>();
  const tokens = new Map<string, string>();
  let ready = false;

  const member = (name: string) => admin.get<Member>(MEMBERS, 'MeshMember', 'demo', name);

  /** A token of the agents' ServiceAccount bound to the agent pod of `node`: the API server adds the node. */
  async function agentToken(node: string): Promise<string> {
    const agentPod = await startPod(admin, { apiVersion: 'v1', kind: 'Pod', metadata: { name: `agent-${node}`, namespace: RELEASE_NS }, spec: { nodeName: node, serviceAccountName: AGENT_SA, hostNetwork: true, containers: [{ name: 'agent', image: 'nodemesh/agent' }] } } as KubeObject);
    const reply = await admin.send<{ status?: { token?: string } }>('POST', `/api/v1/namespaces/${RELEASE_NS}/serviceaccounts/${AGENT_SA}/token`, {
      apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest',
      spec: { expirationSeconds: 3600, boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: agentPod.metadata!.name, uid: agentPod.metadata!.uid } },
    });
    assert.equal(reply.status, 201, JSON.stringify(reply.body));
    return reply.body.status!.token!;
  }

  async function startAgent(node: string): Promise<AgentHandle> {
    const kubeconfig = join(dir, `${node}.kubeconfig`);
    writeFileSync(kubeconfig, plane!.kubeConfigYaml(tokens.get(node)!, AGENT_SA), { mode: 0o600 });
    const agent = await sim!.startAgent(node, ['--kube', '--kubeconfig', kubeconfig, '--capture', 'ebpf', ...simAgentIdentityArgs(sim!.state, node)]);
    agents.set(node, agent);
    return agent;
  }

  before(async () => {
    if (process.getuid?.() !== 0 || !requireControlPlane()) return;
    ensureHelm();
    dir = mkdtempSync(join(tmpdir(), 'nm-kube-mtls-'));
    plane = await startControlPlane();
    admin = plane.admin();
    await installChart(admin, RELEASE_NS, ['ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding']);
    await waitDefaultServiceAccount(admin, RELEASE_NS);
    // b1 joins the mesh too: the test is about the hop from node1 to node2.
    await installTopology(admin, EXAMPLE_TOPOLOGY, dir, (p) => {
      if (p.metadata!.name === 'b1') p.metadata!.annotations = { ...(p.metadata!.annotations ?? {}), 'nodemesh.dev/mode': 'ambient' };
    });
    for (const node of ['node1', 'node2']) tokens.set(node, await agentToken(node));

    sim = await new SimFixture(uniqueSimName('kmtls'), dir).up();
    for (const p of ['demo/a1', 'demo/b1']) await sim.startEchoServer(p);
    await Promise.all([startAgent('node1'), startAgent('node2')]);
    await agents.get('node1')!.waitPod('demo/a1', 'enrolled', 30_000);
    await agents.get('node2')!.waitPod('demo/b1', 'enrolled', 30_000);
    ready = true;
  }, { timeout: 300_000 });

  after(async () => {
    for (const a of agents.values()) await a.stop().catch(() => undefined);
    await sim?.close();
    await plane?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const need = (t: TestContext): boolean => needClusterAndSim(t, ready);

  test('each agent publishes its enrolled pods as MeshMembers, owned by the Pod', { timeout: 60_000 }, async (t) => {
    if (!need(t)) return;
    const a1 = await waitFor('MeshMember demo/a1', () => member('a1'), 20_000);
    const b1 = await waitFor('MeshMember demo/b1', () => member('b1'), 20_000);
    assert.deepEqual([a1.spec.nodeName, a1.spec.serviceAccount, a1.spec.ips[0]], ['node1', 'default', A1]);
    assert.deepEqual([b1.spec.nodeName, b1.spec.ips[0]], ['node2', B1]);
    const pod = (await admin.get('v1', 'Pod', 'demo', 'b1'))!;
    assert.deepEqual((b1.metadata as { ownerReferences: Array<{ uid: string }> }).ownerReferences.map((o) => o.uid), [pod.metadata!.uid]);
    assert.equal(await member('a2'), undefined, 'a2 is not in the mesh');
  });

  test('a1 on node1 reaches b1 on node2 through the mTLS tunnel; node2 reports the source\'s certificate identity', { timeout: 60_000 }, async (t) => {
    if (!need(t)) return;
    // node1's agent must have learnt b1 (a member) before it tunnels.
    let last: unknown;
    await waitFor('node1 to tunnel to b1 (b1\'s app sees the inbound path\'s 127.0.0.6)', async () => {
      const r = await sim!.client('demo/a1', B1, 8080, 'via-tunnel');
      last = r;
      return peerOf(r.reply) === '127.0.0.6' ? r : undefined;
    }, 20_000).catch((err: Error) => { throw new Error(`${err.message}; last: ${JSON.stringify(last)}; node1 log: ${agents.get('node1')!.log.slice(-3000)}`); });
    const m1 = await agents.get('node1')!.metrics();
    assert.ok(metricSum(m1, 'nodemesh_tunnel_sessions_total', { side: 'client' }) >= 1, 'node1 opened a tunnel session');
    const m2 = await agents.get('node2')!.metrics();
    assert.ok(metricSum(m2, 'istio_tcp_connections_opened_total', { reporter: 'destination', connection_security_policy: 'mutual_tls', source_principal: 'spiffe://cluster.local/ns/demo/sa/default', destination_workload: 'b1' }) >= 1,
      m2.split('\n').filter((l) => l.startsWith('istio_tcp_connections_opened_total')).join('\n'));
  });

  test('an agent can publish no member of another node, and a token not bound to a pod none at all', { timeout: 60_000 }, async (t) => {
    if (!need(t)) return;
    const forged = memberObjectOf({ name: 'forged', namespace: 'demo', uid: '', labels: {}, annotations: {}, nodeName: 'node2', ips: ['10.244.2.99'], hostNetwork: false, serviceAccount: 'default', containerPorts: [], ready: true }) as unknown as KubeObject;
    const asNode1 = plane!.client(tokens.get('node1')!);
    const denied = await asNode1.tryCreate(forged);
    assert.ok(denied.status === 403 || denied.status === 422, JSON.stringify(denied.body));
    assert.match((denied.body as { message: string }).message, /own node \(node1\) only, not of node2/);
    const unbound = plane!.client(await plane!.serviceAccountToken(RELEASE_NS, AGENT_SA));
    const refused = await unbound.tryCreate({ ...forged, spec: { ...(forged as Member).spec, nodeName: 'node1' }, metadata: { ...forged.metadata, labels: { 'nodemesh.dev/node': 'node1' } } } as KubeObject);
    assert.match((refused.body as { message?: string }).message ?? '', /must be bound to its pod/, JSON.stringify(refused.body));
    assert.equal(await member('forged'), undefined);
  });

  test('a pod leaving the mesh leaves the members, and node1 stops tunnelling to it', { timeout: 60_000 }, async (t) => {
    if (!need(t)) return;
    await admin.mergePatch((await admin.get('v1', 'Pod', 'demo', 'b1'))!, { metadata: { annotations: { 'nodemesh.dev/mode': null } } });
    await agents.get('node2')!.waitPod('demo/b1', 'absent', 20_000);
    await waitFor('MeshMember demo/b1 to go', async () => ((await member('b1')) === undefined ? true : undefined), 20_000);
    await waitFor('a1 to reach b1 directly', async () => {
      const r = await sim!.client('demo/a1', B1, 8080, 'direct');
      return peerOf(r.reply) === A1 ? r : undefined;
    }, 20_000);
  });
});
