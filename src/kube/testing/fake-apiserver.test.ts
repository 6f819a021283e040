import assert from 'node:assert/strict';
import { get } from 'node:http';
import test, { type TestContext } from 'node:test';
import { namespace, pod } from './cluster-objects';
import { FakeApiServer } from './fake-apiserver';
import { eventually } from './results';

/** The fake API server itself answers like kube-apiserver where the agent depends on it. */

async function start(t: TestContext): Promise<FakeApiServer> {
  const server = await FakeApiServer.start();
  t.after(() => server.close());
  return server;
}

async function getJSON(server: FakeApiServer, path: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${server.url}${path}`);
  return { status: res.status, body: await res.json() };
}

/**
 * Opens a watch and collects its events until `count` arrived, the stream ended, or
 * `ms` passed. `during` runs once the response headers are in.
 */
function watchFor(
  server: FakeApiServer,
  path: string,
  ms: number,
  during?: () => void,
  count = Infinity,
): Promise<{ events: Array<{ type: string; object: any }>; ended: boolean }> {
  return new Promise((resolve) => {
    const events: Array<{ type: string; object: any }> = [];
    let buffer = '';
    let ended = false;
    let timer: NodeJS.Timeout | undefined;
    const done = (): void => {
      clearTimeout(timer);
      req.destroy();
      resolve({ events, ended });
    };
    const req = get(`${server.url}${path}`, (res) => {
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let nl;
        while ((nl = buffer.indexOf('\n')) >= 0) {
          events.push(JSON.parse(buffer.slice(0, nl)));
          buffer = buffer.slice(nl + 1);
        }
        if (events.length >= count) done();
      });
      res.on('end', () => {
        ended = true;
        done();
      });
      res.on('close', () => done());
      during?.();
      timer = setTimeout(done, ms);
    });
    req.on('error', () => done()); // a cut connection ends the collection too
  });
}

test('LIST: kinds, selectors, resourceVersion, built-in items without kind', async (t) => {
  const server = await start(t);
  server.create(namespace('default'));
  server.create(pod('a', { ip: '10.0.0.1', node: 'n1', labels: { app: 'x', tier: 'web' } }));
  server.create(pod('b', { ip: '10.0.0.2', node: 'n2', labels: { app: 'y' } }));
  server.create(pod('c', { namespace: 'other', ip: '10.0.0.3', node: 'n1' }));
  const all = await getJSON(server, '/api/v1/pods');
  assert.equal(all.body.kind, 'PodList');
  assert.equal(all.body.metadata.resourceVersion, server.resourceVersion);
  assert.equal(all.body.items.length, 3);
  assert.equal(all.body.items[0].kind, undefined);
  const names = async (path: string) => (await getJSON(server, path)).body.items.map((p: any) => p.metadata.name);
  assert.deepEqual(await names('/api/v1/pods?fieldSelector=spec.nodeName%3Dn1'), ['a', 'c']);
  assert.deepEqual(await names('/api/v1/namespaces/default/pods?fieldSelector=spec.nodeName%3Dn1'), ['a']);
  assert.deepEqual(await names('/api/v1/pods?fieldSelector=metadata.name%3Db'), ['b']);
  assert.deepEqual(await names('/api/v1/pods?labelSelector=app%20in%20(x,z),tier'), ['a']);
  assert.deepEqual(await names('/api/v1/pods?labelSelector=app!%3Dx'), ['b', 'c']);
  assert.equal((await getJSON(server, '/api/v1/pods?fieldSelector=spec.hostname%3Dx')).status, 400);
  assert.equal((await getJSON(server, '/api/v1/namespaces/default/pods/a')).body.kind, 'Pod');
  assert.equal((await getJSON(server, '/api/v1/namespaces/default/pods/zz')).body.reason, 'NotFound');
  const crd = await getJSON(server, '/apis/nodemesh.dev/v1alpha1/trafficpolicies');
  assert.equal(crd.body.kind, 'TrafficPolicyList');
  server.setGroupInstalled('nodemesh.dev', false);
  assert.equal((await getJSON(server, '/apis/nodemesh.dev/v1alpha1/trafficpolicies')).status, 404);
  server.failNextLists(1, 503);
  assert.equal((await getJSON(server, '/api/v1/pods')).body.code, 503);
  assert.equal((await getJSON(server, '/api/v1/pods')).status, 200);
});

test('WATCH: replay from a resourceVersion, selector transitions, bookmarks on request, 410 after compaction', async (t) => {
  const server = await start(t);
  server.create(pod('a', { ip: '10.0.0.1', node: 'n1' }));
  const from = server.resourceVersion;
  server.create(pod('b', { ip: '10.0.0.2', node: 'n1' }));

  const moved = await watchFor(server, `/api/v1/pods?watch=true&resourceVersion=${from}&fieldSelector=spec.nodeName%3Dn1`, 5000, () => {
    const a = server.get('v1', 'Pod', 'default', 'a')!;
    (a.spec as Record<string, unknown>).nodeName = 'n2'; // leaves the selector
    server.update(a);
    server.sendBookmarks(); // not asked for: not sent
    server.delete(pod('b'));
  }, 3);
  assert.deepEqual(
    moved.events.map((e) => `${e.type} ${e.object.metadata.name}`),
    ['ADDED b', 'DELETED a', 'DELETED b'],
  );
  assert.ok(Number(moved.events[2]!.object.metadata.resourceVersion) > Number(moved.events[1]!.object.metadata.resourceVersion));

  const initial = await watchFor(server, '/api/v1/pods?watch=true&allowWatchBookmarks=true', 5000, () => server.sendBookmarks(), 2);
  assert.deepEqual(
    initial.events.map((e) => `${e.type} ${e.object.metadata.name ?? e.object.metadata.resourceVersion}`),
    ['ADDED a', `BOOKMARK ${server.resourceVersion}`],
  );

  server.compact();
  const expired = await watchFor(server, `/api/v1/pods?watch=true&resourceVersion=${from}`, 5000);
  assert.equal(expired.events.length, 1);
  assert.equal(expired.events[0]!.type, 'ERROR');
  assert.equal(expired.events[0]!.object.code, 410);
  assert.equal(expired.events[0]!.object.reason, 'Expired');
  assert.equal(expired.ended, true, 'the stream ends after the 410');
  // From the current resourceVersion it is fine.
  const current = await watchFor(server, `/api/v1/pods?watch=true&resourceVersion=${server.resourceVersion}`, 50);
  assert.deepEqual(current.events, []);
});

test('WATCH: timeoutSeconds ends the stream; dropWatches cuts it', async (t) => {
  const server = await start(t);
  const timed = await watchFor(server, '/api/v1/pods?watch=true&timeoutSeconds=1', 5000);
  assert.equal(timed.ended, true);
  const cut = watchFor(server, '/api/v1/pods?watch=true', 5000);
  await eventually(() => server.openWatches('Pod') === 1, 'the watch open');
  assert.equal(server.openWatches('Pod'), 1);
  server.dropWatches();
  await cut;
  assert.equal(server.openWatches(), 0);
});

test('PATCH: merge patch on /status changes only status and honours a resourceVersion precondition', async (t) => {
  const server = await start(t);
  const created = server.create({ apiVersion: 'nodemesh.dev/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'p', namespace: 'default' }, spec: { a: 1 } });
  const path = `${server.url}/apis/nodemesh.dev/v1alpha1/namespaces/default/trafficpolicies/p/status`;
  const patch = (body: unknown, type = 'application/merge-patch+json') => fetch(path, { method: 'PATCH', headers: { 'content-type': type }, body: JSON.stringify(body) });
  let res = await patch({ spec: { a: 2 }, status: { ok: true } });
  assert.equal(res.status, 200);
  let stored = server.get('nodemesh.dev/v1alpha1', 'TrafficPolicy', 'default', 'p')!;
  assert.deepEqual(stored.spec, { a: 1 });
  assert.deepEqual(stored.status, { ok: true });
  assert.equal(stored.metadata!.generation, 1);
  res = await patch({ metadata: { resourceVersion: created.metadata!.resourceVersion }, status: { ok: false } });
  assert.equal(res.status, 409);
  res = await patch({ status: {} }, 'application/strategic-merge-patch+json');
  assert.equal(res.status, 415);
  stored = server.get('nodemesh.dev/v1alpha1', 'TrafficPolicy', 'default', 'p')!;
  assert.deepEqual(stored.status, { ok: true });
  assert.deepEqual(
    server.statusPatches.map((p) => p.status),
    [200, 409, 415],
  );
});
