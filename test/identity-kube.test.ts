/**
 * The mesh's CA in cluster mode (`nodemesh identity serve --kube`, as the chart runs it) on
 * a real Kubernetes control plane: it runs as the chart's ServiceAccount with the chart's
 * RBAC exactly as rendered, keeps a generated root in its Secret, publishes the trust
 * bundle in a ConfigMap, and authenticates agents by TokenReview: a projected token for
 * audience nodemesh-ca, of the agents' ServiceAccount, bound to a pod on a node, gets
 * certificates for the pods of that node and of no other.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CaClient } from '../src/identity/ca-client';
import { DEFAULT_CA_SERVER_NAME } from '../src/identity/ca-server';
import { certificateFacts, leafOf } from '../src/identity/certificate-facts';
import { workloadKeyAndCsr } from '../src/identity/workload-csr';
import type { ControlPlane } from '../src/kube/testing/control-plane';
import type { KubeObject } from '../src/kube/testing/kube-object';
import type { KubeTestClient } from '../src/kube/testing/kube-test-client';
import { CLI, waitFor } from '../src/sim/harness';
import { endProcess } from '../src/sim/processes';
import { ensureHelm, needHelm, template } from './helpers/helm';
import { installAll, KUBE_VERSION, rbacOf, registerNode, requireControlPlane, startControlPlane, startPod, waitDefaultServiceAccount } from './helpers/kube-cluster';

const NS = 'nodemesh-system';
const CA_SA = 'nodemesh-identity';
const AGENT_SA = 'nodemesh-agent';
const WEB_SA = 'spiffe://cluster.local/ns/demo/sa/web';

type Secret = KubeObject & { type?: string; data?: Record<string, string> };
type ConfigMap = KubeObject & { data?: Record<string, string> };

describe('the CA on a real Kubernetes API server', { concurrency: false, timeout: 600_000 }, () => {
  let plane: ControlPlane | undefined;
  let admin: KubeTestClient;
  let dir = '';
  let caKubeconfig = '';
  let ca: ChildProcess | undefined;
  let caLog = '';
  let ready = false;

  const socket = () => join(dir, 'ca.sock');
  const bundle = async () => (await admin.get<ConfigMap>('v1', 'ConfigMap', NS, 'nodemesh-ca-root'))?.data?.['ca.crt'];

  /** The CA, logging at info (the test runner's environment says warn): its readiness and how it got its key are read from the log. */
  async function startCa(): Promise<void> {
    caLog = '';
    rmSync(join(dir, 'state'), { recursive: true, force: true });
    ca = spawn(process.execPath, [CLI, 'identity', 'serve', '--kube', '--kubeconfig', caKubeconfig, '--state-dir', join(dir, 'state'), '--listen', `unix:${socket()}`,
      '--agent-service-account', `${NS}/${AGENT_SA}`, '--ca-secret', `${NS}/nodemesh-ca`, '--publish-bundle', `${NS}/nodemesh-ca-root`, '--publish-bundle-all', 'nodemesh-ca-root'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODEMESH_LOG_LEVEL: 'info' } });
    ca.stdout!.on('data', (d: Buffer) => { caLog += d.toString(); });
    ca.stderr!.on('data', (d: Buffer) => { caLog += d.toString(); });
    await waitFor('the CA to be ready', () => (caLog.includes('CA ready') ? true : ca!.exitCode !== null ? Promise.reject(new Error(`the CA exited: ${caLog}`)) : undefined), 30_000)
      .catch((err: Error) => { throw new Error(`${err.message}; CA log: ${caLog.slice(-3000)}`); });
  }

  async function stopCa(): Promise<void> {
    if (ca?.pid && ca.exitCode === null) await endProcess(ca.pid, 10_000);
    ca = undefined;
  }

  /** A projected token as the kubelet mounts it: for `audience`, bound to `pod` (the API server adds the pod's node). */
  async function token(sa: string, namespace: string, audience: string, pod?: KubeObject): Promise<string> {
    const reply = await admin.send<{ status?: { token?: string } }>('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${sa}/token`, {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { audiences: [audience], expirationSeconds: 600, ...(pod ? { boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata!.name, uid: pod.metadata!.uid } } : {}) },
    });
    assert.equal(reply.status, 201, JSON.stringify(reply.body));
    return reply.body.status!.token!;
  }

  const client = async (jwt: string) => new CaClient({ address: `unix:${socket()}`, trustBundlePem: (await bundle())!, serverName: DEFAULT_CA_SERVER_NAME }, () => jwt);
  const signFor = async (jwt: string, pod: string) => (await client(jwt)).sign({ csrPem: (await workloadKeyAndCsr(WEB_SA)).csrPem, pod: { namespace: 'demo', name: pod, serviceAccount: 'web' } });

  let agentPod: KubeObject;
  let otherPod: KubeObject;
  let webPod: KubeObject;

  before(async () => {
    if (!requireControlPlane()) return;
    ensureHelm();
    dir = mkdtempSync(join(tmpdir(), 'nm-ca-kube-'));
    plane = await startControlPlane();
    admin = plane.admin();
    const rendered = template({ namespace: NS, kubeVersion: KUBE_VERSION });
    assert.equal(rendered.status, 0, rendered.stderr);
    for (const name of [NS, 'demo']) await admin.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
    await installAll(admin, rbacOf(rendered.objects));
    for (const node of ['node1', 'node2']) await registerNode(admin, node);
    await waitDefaultServiceAccount(admin, 'demo');
    await admin.create({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'web', namespace: 'demo' } });
    const podOn = (namespace: string, name: string, node: string, sa: string, ip: string): KubeObject => ({
      apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace },
      spec: { nodeName: node, serviceAccountName: sa, containers: [{ name: 'app', image: 'nodemesh/test' }] },
      status: { podIP: ip },
    } as KubeObject);
    webPod = await startPod(admin, podOn('demo', 'web-1', 'node1', 'web', '10.244.1.30'));
    await startPod(admin, podOn('demo', 'web-3', 'node1', 'web', '10.244.1.32'));
    await startPod(admin, podOn('demo', 'web-2', 'node2', 'web', '10.244.2.30'));
    agentPod = await startPod(admin, podOn(NS, 'agent-node1', 'node1', AGENT_SA, '192.0.2.1'));
    otherPod = await startPod(admin, podOn('demo', 'not-an-agent', 'node1', 'default', '10.244.1.31'));
    caKubeconfig = join(dir, 'ca.kubeconfig');
    writeFileSync(caKubeconfig, plane.kubeConfigYaml(await plane.serviceAccountToken(NS, CA_SA), CA_SA), { mode: 0o600 });
    await startCa();
    ready = true;
  }, { timeout: 300_000 });

  after(async () => {
    await stopCa();
    await plane?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const need = (t: Parameters<typeof needHelm>[0]): boolean => {
    if (!requireControlPlane(t) || !needHelm(t)) return false;
    assert.ok(ready, `the set-up (before) failed; CA log: ${caLog.slice(-2000)}`);
    return true;
  };

  test('the first start generates the root into its Secret and publishes the bundle; a restart keeps the same root', { timeout: 120_000 }, async (t) => {
    if (!need(t)) return;
    const secret = await admin.get<Secret>('v1', 'Secret', NS, 'nodemesh-ca');
    assert.equal(secret?.type, 'kubernetes.io/tls');
    assert.ok(secret?.data?.['tls.key'] && secret.data['tls.crt']);
    const published = await waitFor('the bundle ConfigMap', bundle, 20_000);
    assert.equal(published, Buffer.from(secret!.data!['ca.crt']!, 'base64').toString(), 'the ConfigMap holds the Secret\'s roots');
    await stopCa();
    await startCa();
    assert.match(caLog, /"result":"loaded"/, 'the restarted CA read the Secret');
    assert.equal(await bundle(), published, 'same root: certificates issued before stay trusted');
  });

  test('a token bound to an agent pod on node1 gets certificates for node1\'s pods, never for node2\'s', { timeout: 60_000 }, async (t) => {
    if (!need(t)) return;
    const jwt = await token(AGENT_SA, NS, 'nodemesh-ca', agentPod);
    const issued = await signFor(jwt, 'web-1');
    assert.equal(certificateFacts(leafOf(issued.chainPem)).spiffeId, WEB_SA);
    await assert.rejects(signFor(jwt, 'web-2'), (e: Error & { code?: string }) => e.code === 'ERR_NM_CA_DENIED' && /runs on node node2, not on the agent's node node1/.test(e.message));
    await assert.rejects(signFor(jwt, 'gone'), (e: Error & { code?: string }) => e.code === 'ERR_NM_CA_DENIED', 'a pod that does not exist');
  });

  test('tokens the CA refuses: another audience, another service account, a token bound to no pod', { timeout: 60_000 }, async (t) => {
    if (!need(t)) return;
    const refused = (pattern: RegExp) => (e: Error & { code?: string }) => e.code === 'ERR_NM_CA_UNAUTHENTICATED' && pattern.test(e.message);
    await assert.rejects(signFor(await token(AGENT_SA, NS, 'https://kubernetes.default.svc', agentPod), 'web-1'), refused(/not authenticated/), 'the API server\'s own audience');
    await assert.rejects(signFor(await token(AGENT_SA, NS, 'nodemesh-ca'), 'web-1'), refused(/not bound to a pod on a node/));
    await assert.rejects(signFor(await token('web', 'demo', 'nodemesh-ca'), 'web-1'), refused(/not bound to a pod on a node/), 'a workload token bound to no pod');
    // Another service account's token, bound to its pod: a workload's (a sidecar's), good for that pod only.
    await assert.rejects(signFor(await token('default', 'demo', 'nodemesh-ca', otherPod), 'web-1'), (e: Error & { code?: string }) => e.code === 'ERR_NM_CA_DENIED' && /bound to pod demo\/not-an-agent/.test(e.message));
  });

  test('a sidecar\'s token (its pod\'s service account, bound to its pod) gets that pod\'s certificate, never another\'s on the same node', { timeout: 60_000 }, async (t) => {
    if (!need(t)) return;
    const jwt = await token('web', 'demo', 'nodemesh-ca', webPod);
    const issued = await signFor(jwt, 'web-1');
    assert.equal(certificateFacts(leafOf(issued.chainPem)).spiffeId, WEB_SA);
    await assert.rejects(signFor(jwt, 'web-3'), (e: Error & { code?: string }) => e.code === 'ERR_NM_CA_DENIED' && /bound to pod demo\/web-1: a workload's token gets its own pod's certificate, not demo\/web-3's/.test(e.message), 'same node, same service account: still not its pod');
  });

  test('the trust bundle is kept in every namespace for the sidecars there, also in a namespace created later', { timeout: 60_000 }, async (t) => {
    if (!need(t)) return;
    const published = await waitFor('the bundle in the release namespace', bundle, 20_000);
    const inNamespace = async (ns: string) => (await admin.get<ConfigMap>('v1', 'ConfigMap', ns, 'nodemesh-ca-root'))?.data?.['ca.crt'];
    for (const ns of ['demo', 'default', 'kube-system']) assert.equal(await waitFor(`the bundle in ${ns}`, () => inNamespace(ns), 20_000), published, ns);
    await admin.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'late' } });
    assert.equal(await waitFor('the bundle in the new namespace', () => inNamespace('late'), 20_000), published);
  });
});
