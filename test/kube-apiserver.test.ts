/**
 * KubeSource, the agent's view of the cluster, on a real kube-apiserver (with etcd and
 * the controller manager, src/kube/testing/control-plane.ts): lists with this node's field
 * selector, paging with the server's continue tokens, watches of every kind, CRDs
 * installed while the source runs, and a watch that expires after an etcd compaction; and
 * the controller manager's CSR signer, which the identity CA builds on.
 *
 * What a real server cannot be made to do on demand (a connection cut mid-watch, 500s,
 * 410s at a chosen moment, bookmarks now) stays in src/kube/kube-source.test.ts, on the
 * fake API server.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeSource, loadKubeConfig, type KubeSourceOptions, type KubeSourceResult } from '../src/kube/kube-source';
import { grpcRoute, httpRoute, namespace, pod, service, trafficPolicy } from '../src/kube/testing/cluster-objects';
import type { ControlPlane } from '../src/kube/testing/control-plane';
import type { KubeTestClient } from '../src/kube/testing/kube-test-client';
import { ResultLog } from '../src/kube/testing/results';
import { pollUntil } from '../src/util/deadline';
import { run } from '../src/util/exec';
import type { KubeObject } from '../src/kube/testing/kube-object';
import { waitFor } from '../src/sim/harness';
import { installAll, meshCrds, registerNode, requireControlPlane, startControlPlane, startPod, waitDefaultServiceAccount } from './helpers/kube-cluster';

const NODE = 'node-a';
const GOOD_POLICY = { targetRef: { group: '', kind: 'Service', name: 'web' }, loadBalancer: { type: 'RoundRobin' } };
const names = (list: Array<{ namespace?: string; name: string }>): string[] => list.map((o) => (o.namespace ? `${o.namespace}/${o.name}` : o.name)).sort();

interface Cluster {
  plane: ControlPlane;
  admin: KubeTestClient;
  kubeconfig: string;
  sources: KubeSource[];
}

async function startCluster(options: { watchCache?: boolean; crds?: boolean } = {}): Promise<Cluster> {
  const plane = await startControlPlane({ watchCache: options.watchCache });
  const admin = plane.admin();
  if (options.crds !== false) await installAll(admin, meshCrds());
  // Pods bound to a Node that does not exist are deleted by the pod garbage collector.
  for (const node of [NODE, 'node-b']) await registerNode(admin, node);
  await waitDefaultServiceAccount(admin, 'default');
  const kubeconfig = join(plane.dir, 'source.kubeconfig');
  writeFileSync(kubeconfig, plane.kubeConfigYaml(plane.adminToken), { mode: 0o600 });
  return { plane, admin, kubeconfig, sources: [] };
}

function sourceFor(cluster: Cluster, options: Partial<KubeSourceOptions> = {}): KubeSource {
  const source = new KubeSource({ kubeConfig: loadKubeConfig(cluster.kubeconfig), nodeName: NODE, debounceMs: 20, missingCrdRetryMs: 300, backoff: { initialMs: 50, maxMs: 1000 }, ...options });
  cluster.sources.push(source);
  return source;
}

async function stopCluster(cluster: Cluster | undefined): Promise<void> {
  for (const s of cluster?.sources ?? []) s.close();
  await cluster?.plane.close();
}

describe('KubeSource on a real API server', { concurrency: false, timeout: 600_000 }, () => {
  let cluster: Cluster | undefined;

  before(async () => {
    if (!requireControlPlane()) return;
    cluster = await startCluster();
    const { admin } = cluster;
    await admin.create(namespace('shop', { 'nodemesh.dev/mode': 'ambient' }));
    await waitDefaultServiceAccount(admin, 'shop');
    await startPod(admin, pod('web-1', { ip: '10.1.0.11', labels: { app: 'web' }, node: NODE }));
    await startPod(admin, pod('web-2', { ip: '10.1.0.12', labels: { app: 'web' }, node: 'node-b' }));
    await startPod(admin, pod('cart-1', { namespace: 'shop', ip: '10.1.0.21', labels: { app: 'cart' }, node: NODE }));
    const { status: _dropped, ...pending } = pod('pending', { labels: { app: 'web' }, node: NODE });
    await admin.create(pending); // bound here, no IP yet
    await admin.create(service('web', { clusterIP: '10.96.0.10', selector: { app: 'web' } }));
    await admin.create(httpRoute('web-route', 'web'));
    await admin.create(grpcRoute('web-grpc', 'web'));
    await admin.create(trafficPolicy('web-policy', GOOD_POLICY));
  }, { timeout: 180_000 });

  after(() => stopCluster(cluster));

  test('load() reads every kind, and only this node’s pods that have an IP', { timeout: 60_000 }, async (t) => {
    if (!requireControlPlane(t)) return;
    const source = sourceFor(cluster!);
    const log = new ResultLog<KubeSourceResult>();
    let result = await source.load();
    source.watch(log.push);
    // The EndpointSlice controller publishes web's slice a moment after the pods are ready.
    if (!result.endpointSlices.some((s) => s.serviceName === 'web')) result = await log.until((r) => r.endpointSlices.some((s) => s.serviceName === 'web'), 'web\'s EndpointSlice');
    assert.deepEqual(names(result.namespaces), ['default', 'kube-node-lease', 'kube-public', 'kube-system', 'shop']);
    assert.deepEqual(names(result.pods), ['default/web-1', 'shop/cart-1'], 'web-2 runs on node-b; pending has no IP yet');
    assert.deepEqual(names(result.services).filter((n) => n !== 'default/kubernetes'), ['default/web']);
    const slice = result.endpointSlices.find((s) => s.serviceName === 'web')!;
    assert.deepEqual(slice.endpoints.map((e) => e.address).sort(), ['10.1.0.11', '10.1.0.12'], 'the controller manager built the slice from both ready pods');
    assert.deepEqual(result.others.map((o) => `${o.kind} ${o.namespace}/${o.name}`).sort(), ['GRPCRoute default/web-grpc', 'HTTPRoute default/web-route', 'TrafficPolicy default/web-policy']);
    assert.deepEqual(result.rejected, []);
  });

  test('watch() reports pod, namespace and Service changes as the server makes them', { timeout: 90_000 }, async (t) => {
    if (!requireControlPlane(t)) return;
    const { admin } = cluster!;
    const source = sourceFor(cluster!);
    await source.load();
    const log = new ResultLog<KubeSourceResult>();
    source.watch(log.push);

    const web3 = await startPod(admin, pod('web-3', { ip: '10.1.0.13', labels: { app: 'web' }, node: NODE }));
    await startPod(admin, pod('elsewhere', { ip: '10.1.0.99', node: 'node-b' }));
    let r = await log.until((x) => x.pods.some((p) => p.name === 'web-3'), 'web-3 to appear', 20_000);
    assert.ok(!r.pods.some((p) => p.name === 'elsewhere'));

    // Not ready any more (what a kubelet writes when a readiness probe fails).
    await admin.mergePatch(web3, { status: { conditions: [{ type: 'Ready', status: 'False' }] } }, 'status');
    await log.until((x) => x.pods.find((p) => p.name === 'web-3')?.ready === false, 'web-3 not ready', 20_000);
    // The controller takes it out of the Service's ready endpoints.
    await log.until((x) => x.endpointSlices.some((s) => s.serviceName === 'web' && s.endpoints.some((e) => e.address === '10.1.0.13' && !e.ready)), 'web-3 not ready in the slice', 20_000);

    // Deleted (grace 0: no kubelet confirms it).
    await admin.delete(web3);
    await log.until((x) => !x.pods.some((p) => p.name === 'web-3'), 'web-3 deleted', 20_000);

    const ns = (await admin.get('v1', 'Namespace', undefined, 'default'))!;
    await admin.mergePatch(ns, { metadata: { labels: { 'nodemesh.dev/mode': 'sidecar' } } });
    await log.until((x) => x.namespaces.find((n) => n.name === 'default')?.labels['nodemesh.dev/mode'] === 'sidecar', 'namespace label', 20_000);
    await admin.mergePatch(ns, { metadata: { labels: { 'nodemesh.dev/mode': null } } });

    // A Service without a ClusterIP of ours: the server allocates one from its range.
    await admin.create({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'api', namespace: 'default' }, spec: { selector: { app: 'api' }, ports: [{ name: 'grpc', port: 9000, targetPort: 9090 }] } });
    r = await log.until((x) => x.services.some((s) => s.name === 'api'), 'the api Service', 20_000);
    const api = r.services.find((s) => s.name === 'api')!;
    assert.match(api.clusterIPs[0] ?? '', /^10\.96\.\d+\.\d+$/, `allocated from --service-cluster-ip-range: ${JSON.stringify(api)}`);
  });

  test('paged LISTs are followed to the end with the server\'s continue tokens', { timeout: 90_000 }, async (t) => {
    if (!requireControlPlane(t)) return;
    const { admin } = cluster!;
    await admin.create(namespace('paged'));
    await waitDefaultServiceAccount(admin, 'paged');
    for (let i = 0; i < 25; i++) await startPod(admin, pod(`p-${String(i).padStart(2, '0')}`, { namespace: 'paged', ip: `10.3.0.${i + 1}`, node: NODE }));
    const source = sourceFor(cluster!, { pageSize: 10 });
    const result = await source.load();
    assert.equal(result.pods.filter((p) => p.namespace === 'paged').length, 25);
    assert.ok(source.status().find((s) => s.resource === 'pods')!.stats.lists >= 1);
  });

  test('CRDs installed while the source runs are found and watched', { timeout: 120_000 }, async (t) => {
    if (!requireControlPlane(t)) return;
    const bare = await startCluster({ crds: false });
    try {
      await bare.admin.create(service('web', { clusterIP: '10.96.0.10' }));
      const source = sourceFor(bare);
      const first = await source.load();
      assert.deepEqual(first.others, []);
      assert.deepEqual(source.status().filter((s) => s.missing).map((s) => s.resource).sort(), ['authorizationpolicies', 'grpcroutes', 'httproutes', 'meshmembers', 'peerauthentications', 'trafficpolicies', 'xauthorizationpolicies']);
      assert.equal(source.status().reduce((n, s) => n + s.stats.errors, 0), 0, 'a CRD that is not installed is not an error');
      const log = new ResultLog<KubeSourceResult>();
      source.watch(log.push);
      await installAll(bare.admin, meshCrds());
      await bare.admin.create(httpRoute('r1', 'web'));
      await bare.admin.create(trafficPolicy('p1', GOOD_POLICY));
      await log.until((x) => x.others.length === 2, 'the route and the policy', 30_000);
      await bare.admin.create(grpcRoute('g1', 'web'));
      await log.until((x) => x.others.some((o) => o.kind === 'GRPCRoute'), 'a GRPCRoute through the watch', 30_000);
    } finally {
      await stopCluster(bare);
    }
  });

  test('the controller manager signs an approved CSR with the cluster CA', { timeout: 60_000 }, async (t) => {
    if (!requireControlPlane(t)) return;
    const { admin, plane } = cluster!;
    const dir = mkdtempSync(join(plane.dir, 'csr-'));
    await run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'client.key'), '-out', join(dir, 'client.csr'), '-subj', '/O=nodemesh-test/CN=nodemesh-client']);
    const request = Buffer.from(readFileSync(join(dir, 'client.csr'))).toString('base64');
    const csr = await admin.create({ apiVersion: 'certificates.k8s.io/v1', kind: 'CertificateSigningRequest', metadata: { name: 'nodemesh-client' }, spec: { request, signerName: 'kubernetes.io/kube-apiserver-client', usages: ['client auth'], expirationSeconds: 3600 } } as KubeObject);
    await admin.call('PUT', '/apis/certificates.k8s.io/v1/certificatesigningrequests/nodemesh-client/approval', {
      ...csr,
      status: { conditions: [{ type: 'Approved', status: 'True', reason: 'TestApproved', message: 'approved by the test' }] },
    });
    const pem = await waitFor('the signed certificate', async () => {
      const found = await admin.get<KubeObject & { status?: { certificate?: string } }>('certificates.k8s.io/v1', 'CertificateSigningRequest', undefined, 'nodemesh-client');
      return found?.status?.certificate ? Buffer.from(found.status.certificate, 'base64').toString('utf8') : undefined;
    }, 30_000);
    writeFileSync(join(dir, 'client.crt'), pem);
    const verified = await run('openssl', ['verify', '-CAfile', plane.pki.caCert, join(dir, 'client.crt')]);
    assert.match(verified.stdout, /client\.crt: OK/);
  });

  test('watch expiry: after an etcd compaction the source relists and loses nothing', { timeout: 120_000 }, async (t) => {
    if (!requireControlPlane(t)) return;
    // Watches read etcd here (watch cache off), so they expire when etcd compacts.
    const plain = await startCluster({ watchCache: false, crds: false });
    try {
      await startPod(plain.admin, pod('before', { ip: '10.1.0.40', node: NODE }));
      // Short watches: each ends after 1-2 s and resumes from the last resourceVersion it saw.
      const source = sourceFor(plain, { watchTimeoutSeconds: 1 });
      await source.load();
      const log = new ResultLog<KubeSourceResult>();
      source.watch(log.push);
      const podsRv = source.status().find((s) => s.resource === 'pods')!.resourceVersion;
      // History moves on without the pods watch seeing any of it, and is compacted away.
      for (let i = 0; i < 5; i++) await plain.admin.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `churn-${i}`, namespace: 'default' }, data: { i: String(i) } });
      const revision = await plain.plane.compactEtcd();
      assert.ok(revision > Number(podsRv), `compacted at ${revision}, past the pods watch's ${podsRv}`);
      const podsWatch = () => source.status().find((s) => s.resource === 'pods')!;
      // A relist that changes nothing reports nothing: wait on the reflector's counter.
      assert.ok(await pollUntil(() => podsWatch().stats.expired >= 1, Date.now() + 30_000), `the pods watch saw 410 Gone: ${JSON.stringify(podsWatch())}`);
      // It relisted and watches again: what happens now arrives, and nothing was lost.
      await startPod(plain.admin, pod('after', { ip: '10.1.0.41', node: NODE }));
      const r = await log.until((x) => x.pods.some((p) => p.name === 'after'), 'a pod after the relist', 30_000);
      assert.deepEqual(names(r.pods), ['default/after', 'default/before']);
    } finally {
      await stopCluster(plain);
    }
  });
});
