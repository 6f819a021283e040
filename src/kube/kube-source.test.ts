import assert from 'node:assert/strict';
import test, { type TestContext } from 'node:test';
import { KubeSource, type KubeSourceOptions, type KubeSourceResult } from './kube-source';
import { MESH_RESOURCES, collectionPath } from './resources';
import { endpointSlice, grpcRoute, httpRoute, namespace, pod, service, trafficPolicy } from './testing/cluster-objects';
import { FakeApiServer, kubeConfigFor, type RecordedRequest } from './testing/fake-apiserver';
import { ResultLog, eventually, sleep } from './testing/results';

/** Every kind the source watches: one watch each. */
const WATCHED = MESH_RESOURCES.length;

/**
 * The real client-node against the fake API server on 127.0.0.1, for what a real API
 * server cannot be made to do on demand: failed LISTs, 500s and 503s, a watch cut or
 * answered 410 at a chosen moment, bookmarks now, request counts. The everyday behaviour
 * (node filter, watches of every kind, paging, CRDs installed later, expiry after an etcd
 * compaction) is tested on a real kube-apiserver in test/kube-apiserver.test.ts.
 */

const NODE = 'node-a';
const GOOD_POLICY = { targetRef: { group: '', kind: 'Service', name: 'web' }, loadBalancer: { type: 'RoundRobin' } };

async function setup(t: TestContext, seed: (server: FakeApiServer) => void = seedCluster, options: Partial<KubeSourceOptions> = {}) {
  const server = await FakeApiServer.start();
  seed(server);
  const source = new KubeSource({
    kubeConfig: kubeConfigFor(server),
    nodeName: NODE,
    debounceMs: 20,
    missingCrdRetryMs: 200,
    backoff: { initialMs: 50, maxMs: 1000 },
    ...options,
  });
  t.after(async () => {
    source.close();
    await server.close();
  });
  return { server, source };
}

function seedCluster(server: FakeApiServer): void {
  server.create(namespace('default'));
  server.create(namespace('shop', { 'nodemesh.dev/mode': 'ambient' }));
  server.create(pod('web-1', { ip: '10.1.0.11', labels: { app: 'web' } }));
  server.create(pod('web-2', { ip: '10.1.0.12', labels: { app: 'web' }, node: 'node-b' }));
  server.create(pod('cart-1', { namespace: 'shop', ip: '10.1.0.21', labels: { app: 'cart' } }));
  server.create(pod('pending', { labels: { app: 'web' } })); // scheduled here, no IP yet
  server.create(service('web', { clusterIP: '10.96.0.10', selector: { app: 'web' } }));
  server.create(
    endpointSlice('web-abcde', 'web', {
      endpoints: [
        { ip: '10.1.0.11', node: NODE, pod: 'web-1' },
        { ip: '10.1.0.12', node: 'node-b', pod: 'web-2' },
      ],
    }),
  );
  server.create(httpRoute('web-route', 'web'));
  server.create(grpcRoute('web-grpc', 'web'));
  server.create(trafficPolicy('web-policy', GOOD_POLICY));
}

const names = (list: Array<{ namespace?: string; name: string }>): string[] => list.map((o) => (o.namespace ? `${o.namespace}/${o.name}` : o.name)).sort();
const otherNames = (r: KubeSourceResult): string[] => r.others.map((o) => `${o.kind} ${o.namespace}/${o.name}`).sort();

function requestsFor(server: FakeApiServer, path: string, since = 0): RecordedRequest[] {
  return server.requests.filter((r) => r.path === path && r.time >= since);
}

test('load() waits for the first full sync of every kind and reads only this node’s pods', async (t) => {
  const { server, source } = await setup(t);
  server.failNextLists(1, 500); // the first LIST (namespaces) fails: load must wait for its retry
  assert.equal(source.synced, false);
  const result = await source.load();
  assert.equal(source.synced, true);

  assert.deepEqual(names(result.namespaces), ['default', 'shop']);
  assert.deepEqual(names(result.pods), ['default/web-1', 'shop/cart-1'], 'web-2 runs on node-b; pending has no IP yet');
  assert.deepEqual(names(result.services), ['default/web']);
  assert.deepEqual(names(result.endpointSlices), ['default/web-abcde']);
  assert.deepEqual(otherNames(result), ['GRPCRoute default/web-grpc', 'HTTPRoute default/web-route', 'TrafficPolicy default/web-policy']);
  assert.deepEqual(result.rejected, []);
  assert.deepEqual(result.files, []);
  const policy = result.others.find((o) => o.kind === 'TrafficPolicy')!;
  assert.equal((policy.object.metadata as Record<string, unknown>).resourceVersion, undefined, 'others carry configuration, not bookkeeping');

  // The pods LIST and WATCH carry the node's field selector; watches ask for bookmarks and
  // start from the LIST's resourceVersion.
  const podList = requestsFor(server, '/api/v1/pods').find((r) => r.list)!;
  assert.equal(podList.query.fieldSelector, `spec.nodeName=${NODE}`);
  const podWatch = await eventually(() => requestsFor(server, '/api/v1/pods').find((r) => r.watch), 'the pods watch');
  assert.equal(podWatch.query.fieldSelector, `spec.nodeName=${NODE}`);
  assert.equal(podWatch.query.allowWatchBookmarks, 'true');
  assert.ok(Number(podWatch.query.timeoutSeconds) >= 300);
  const status = source.status().find((s) => s.resource === 'pods')!;
  assert.equal(podWatch.query.resourceVersion, status.resourceVersion);
  assert.equal(source.status().find((s) => s.resource === 'namespaces')!.stats.errors, 1);
});

test('a burst of changes is coalesced into few reports', async (t) => {
  const { server, source } = await setup(t, seedCluster, { debounceMs: 50 });
  await source.load();
  const log = new ResultLog<KubeSourceResult>();
  source.watch(log.push);
  for (let i = 0; i < 30; i++) server.create(pod(`burst-${i}`, { ip: `10.2.0.${i + 1}` }));
  await log.until((x) => x.pods.filter((p) => p.name.startsWith('burst-')).length === 30, 'all 30 pods');
  await sleep(150);
  assert.ok(log.all.length <= 3, `30 pods arrived in ${log.all.length} reports`);
});

test('a lone change after a quiet time is reported at once, not after the debounce', async (t) => {
  // A debounce far beyond the wait: only the leading report can deliver the change in time.
  const { server, source } = await setup(t, seedCluster, { debounceMs: 60_000, maxDelayMs: 60_000 });
  await source.load();
  const log = new ResultLog<KubeSourceResult>();
  source.watch(log.push);
  server.create(pod('lone', { ip: '10.2.1.1' }));
  await log.until((x) => x.pods.some((p) => p.name === 'lone'), 'the lone pod, well before the 60 s debounce', 10_000);
});

test('watch expiry: after compaction and dropped watches the source relists and loses nothing', async (t) => {
  const { server, source } = await setup(t);
  await source.load();
  const log = new ResultLog<KubeSourceResult>();
  source.watch(log.push);
  await eventually(() => server.openWatches() === WATCHED, 'every watch open');
  const before = Date.now();

  // The outage: connections drop, objects change meanwhile, history is compacted.
  server.dropWatches();
  server.create(pod('born-in-outage', { ip: '10.1.0.50' }));
  server.delete(pod('web-1'));
  server.create(service('new-svc', { clusterIP: '10.96.0.30' }));
  const ns = server.get('v1', 'Namespace', undefined, 'shop')!;
  ns.metadata!.labels = {};
  server.update(ns);
  server.compact();

  const r = await log.until(
    (x) =>
      x.pods.some((p) => p.name === 'born-in-outage') &&
      !x.pods.some((p) => p.name === 'web-1') &&
      x.services.some((s) => s.name === 'new-svc') &&
      x.namespaces.find((n) => n.name === 'shop')?.labels['nodemesh.dev/mode'] === undefined,
    'convergence after the outage',
  );
  assert.deepEqual(names(r.pods), ['default/born-in-outage', 'shop/cart-1']);
  const pods = source.status().find((s) => s.resource === 'pods')!;
  assert.ok(pods.stats.expired >= 1, 'the pods watch saw 410 Gone');
  // After the 410 it listed again, then watched from the new list's resourceVersion.
  const after = requestsFor(server, '/api/v1/pods', before);
  const relist = after.findIndex((x) => x.list);
  assert.ok(relist > 0 && after[relist - 1]!.watch, 'a watch (answered with 410) came first, then a LIST');
  await eventually(() => requestsFor(server, '/api/v1/pods', before).slice(relist + 1).find((x) => x.watch), 'a watch after the relist');
  // and it keeps working afterwards
  server.create(pod('after', { ip: '10.1.0.51' }));
  await log.until((x) => x.pods.some((p) => p.name === 'after'), 'a pod after recovery');
});

test('a watch answered with HTTP 410 relists too', async (t) => {
  const { server, source } = await setup(t);
  await source.load();
  const log = new ResultLog<KubeSourceResult>();
  source.watch(log.push);
  await eventually(() => server.openWatches() === WATCHED, 'every watch open');
  const before = Date.now();
  server.failNextWatches(WATCHED, 410);
  server.dropWatches();
  server.create(pod('p410', { ip: '10.1.0.80' }));
  await log.until((x) => x.pods.some((p) => p.name === 'p410'), 'the pod after the relist');
  // WATCHED watch requests were answered 410; which reflector got which is a race (one may
  // take two while another takes none), so the claim is per reflector: every one that was
  // told 410 listed its collection again.
  await eventually(() => source.status().reduce((n, s) => n + s.stats.expired, 0) >= WATCHED, 'a 410 per watch handled');
  const expired = source.status().filter((s) => s.stats.expired > 0);
  assert.ok(expired.length > 0);
  // A reflector counts the 410 when it reads it and lists right after: wait for the LIST
  // (observable at the server) rather than expect it to be there already.
  const relisted = (s: (typeof expired)[number]) => requestsFor(server, collectionPath(MESH_RESOURCES.find((r) => r.id === s.resource)!), before).some((r) => r.list);
  await eventually(() => expired.every(relisted), 'every reflector told 410 to list again', 15_000).catch(() => undefined);
  for (const s of expired) assert.ok(relisted(s), `${s.resource} was listed again after its 410`);
  await eventually(() => server.openWatches() === WATCHED, 'every watch back');
});

test('dropped connections reconnect from the last resourceVersion, without relisting', async (t) => {
  const { server, source } = await setup(t);
  await source.load();
  const log = new ResultLog<KubeSourceResult>();
  source.watch(log.push);
  await eventually(() => server.openWatches() === WATCHED, 'every watch open');
  const listsBefore = server.requests.filter((r) => r.list).length;
  server.dropWatches();
  server.create(pod('during-drop', { ip: '10.1.0.60' }));
  await log.until((x) => x.pods.some((p) => p.name === 'during-drop'), 'the pod created while disconnected');
  await eventually(() => server.openWatches() === WATCHED, 'every watch back');
  assert.equal(server.requests.filter((r) => r.list).length, listsBefore, 'history was still there: no LIST');
});

test('reconnects back off exponentially while the API server fails (no tight loop)', async (t) => {
  // Default backoff (200 ms doubling, jittered).
  const { server, source } = await setup(t, seedCluster, { backoff: undefined });
  await source.load();
  const log = new ResultLog<KubeSourceResult>();
  source.watch(log.push);
  await eventually(() => server.openWatches() === WATCHED, 'every watch open');

  // Every watch fails, and so does every list (compaction forces relists).
  server.failNextLists(100000, 500);
  server.failNextWatches(100000, 503);
  server.compact();
  server.dropWatches();
  const start = Date.now();
  await sleep(2000);
  const window = server.requests.filter((r) => r.time >= start && r.time < start + 2000);
  const perResource = new Map<string, number>();
  for (const r of window) perResource.set(r.path, (perResource.get(r.path) ?? 0) + 1);
  for (const [path, count] of perResource) {
    // 100-200, 200-400, 400-800, 800-1600 ms ...: at most 6 attempts in 2 s, even counting a stray one.
    assert.ok(count <= 6, `${path}: ${count} requests in 2 s`);
  }
  assert.ok(window.length >= WATCHED, `it does retry (${window.length} requests)`);
  assert.ok(window.length <= WATCHED * 6, `${window.length} requests in 2 s`);
  const errors = source.status().reduce((n, s) => n + s.stats.errors, 0);
  assert.ok(errors >= WATCHED);

  // The server recovers: the source converges, including what changed meanwhile.
  server.clearFailures();
  server.create(pod('after-outage', { ip: '10.1.0.70' }));
  await log.until((x) => x.pods.some((p) => p.name === 'after-outage'), 'recovery', 10000);
});

test('bookmarks advance the resourceVersion a reconnect starts from', async (t) => {
  const { server, source } = await setup(t);
  await source.load();
  source.watch(() => undefined);
  await eventually(() => server.openWatches() === WATCHED, 'every watch open');
  const podsRV = source.status().find((s) => s.resource === 'pods')!.resourceVersion!;
  // Changes the pods watch never sees (other kinds) move the global resourceVersion on.
  server.create(service('other', { clusterIP: '10.96.0.40' }));
  server.create(namespace('more'));
  assert.ok(Number(server.resourceVersion) > Number(podsRV));
  server.sendBookmarks();
  const bookmarkRV = server.resourceVersion;
  await eventually(() => source.status().find((s) => s.resource === 'pods')!.resourceVersion === bookmarkRV, 'the pods reflector at the bookmark');

  const before = Date.now();
  server.dropWatches();
  const rewatch = await eventually(() => requestsFor(server, '/api/v1/pods', before).find((r) => r.watch), 'the pods re-watch');
  assert.equal(rewatch.query.resourceVersion, bookmarkRV);
  assert.ok(!requestsFor(server, '/api/v1/pods', before).some((r) => r.list));
});

test('missing CRDs are empty, not fatal, and appear once installed', async (t) => {
  const { server, source } = await setup(t, (s) => {
    s.create(namespace('default'));
    s.create(service('web', { clusterIP: '10.96.0.10' }));
    s.setGroupInstalled('gateway.networking.k8s.io', false);
    s.setGroupInstalled('nodemesh.dev', false);
    s.setGroupInstalled('security.istio.io', false);
    s.setGroupInstalled('gateway.networking.x-k8s.io', false);
  });
  const first = await source.load();
  assert.deepEqual(first.others, []);
  const missing = source
    .status()
    .filter((s) => s.missing)
    .map((s) => s.resource)
    .sort();
  assert.deepEqual(missing, ['authorizationpolicies', 'grpcroutes', 'httproutes', 'meshmembers', 'peerauthentications', 'trafficpolicies', 'xauthorizationpolicies']);
  assert.equal(source.status().reduce((n, s) => n + s.stats.errors, 0), 0, 'a missing CRD is not an error');
  const log = new ResultLog<KubeSourceResult>();
  source.watch(log.push);

  // Looked for again every missingCrdRetryMs (200 ms), not in a loop.
  const since = Date.now();
  await sleep(700);
  const probes = requestsFor(server, '/apis/nodemesh.dev/v1alpha1/trafficpolicies', since).length;
  assert.ok(probes >= 2 && probes <= 5, `${probes} probes in 700 ms`);

  server.setGroupInstalled('gateway.networking.k8s.io', true);
  server.setGroupInstalled('nodemesh.dev', true);
  server.setGroupInstalled('security.istio.io', true);
  server.setGroupInstalled('gateway.networking.x-k8s.io', true);
  server.create(httpRoute('r1', 'web'));
  server.create(trafficPolicy('p1', GOOD_POLICY));
  const r = await log.until((x) => x.others.length === 2, 'the route and the policy');
  assert.deepEqual(otherNames(r), ['HTTPRoute default/r1', 'TrafficPolicy default/p1']);
  await eventually(() => !source.status().some((s) => s.missing), 'every CRD found');
  // and they are watched from now on
  server.create(grpcRoute('g1', 'web'));
  await log.until((x) => x.others.some((o) => o.kind === 'GRPCRoute'), 'a GRPCRoute through the watch');

  // A CRD removed later empties its kind again.
  server.setGroupInstalled('gateway.networking.k8s.io', false);
  await log.until((x) => !x.others.some((o) => o.kind === 'HTTPRoute' || o.kind === 'GRPCRoute'), 'routes gone with their CRD');
});

test('close() rejects a pending load() and stops every request', async (t) => {
  const { server, source } = await setup(t);
  server.failNextLists(100000, 500);
  const pending = source.load();
  await sleep(100);
  source.close();
  await assert.rejects(pending, { code: 'ERR_NM_SOURCE_CLOSED' });
  await sleep(50);
  const count = server.requests.length;
  await sleep(500);
  assert.equal(server.requests.length, count, 'no request after close');
  assert.throws(() => source.watch(() => undefined), { code: 'ERR_NM_SOURCE_CLOSED' });
});

test('periodic resync relists', async (t) => {
  const { server, source } = await setup(t, seedCluster, { resyncMs: 300 });
  await source.load();
  await sleep(1000);
  const lists = requestsFor(server, '/api/v1/services').filter((r) => r.list).length;
  assert.ok(lists >= 2, `${lists} lists of services in 1 s with a 300 ms resync`);
});
