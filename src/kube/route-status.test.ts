import assert from 'node:assert/strict';
import test, { type TestContext } from 'node:test';
import type { K8sObject } from '../config/k8s-yaml';
import { KubeSource } from './kube-source';
import { KubeStatusWriter } from './status-writer';
import { httpRoute, namespace, service } from './testing/cluster-objects';
import { FakeApiServer, kubeConfigFor, type KubeObject } from './testing/fake-apiserver';
import { eventually } from './testing/results';
import { ManualLeadership } from './testing/manual-leadership';

/** Gateway API route status (status.parents) written by the Kubernetes source, on the fake API server. */

const FIXED_NOW = new Date('2025-01-02T03:04:05.678Z');
const GROUP = 'gateway.networking.k8s.io/v1';

interface Parent { parentRef: Record<string, unknown>; controllerName: string; conditions: Array<{ type: string; status: string; reason: string; message: string; observedGeneration?: number; lastTransitionTime: string }> }

function parents(object: KubeObject | undefined): Parent[] {
  return ((object?.status as { parents?: Parent[] } | undefined)?.parents ?? []) as Parent[];
}

/** "Accepted=True/Accepted ResolvedRefs=False/BackendNotFound" for nodemesh's entry of the route. */
function summary(server: FakeApiServer, name: string): string | undefined {
  const mine = parents(server.get(GROUP, 'HTTPRoute', 'default', name)).filter((p) => p.controllerName === 'nodemesh.dev/mesh');
  if (mine.length === 0) return undefined;
  return mine.map((p) => `${String(p.parentRef.name)}: ${p.conditions.map((c) => `${c.type}=${c.status}/${c.reason}`).join(' ')}`).join('; ');
}

async function start(t: TestContext, objects: KubeObject[]) {
  const server = await FakeApiServer.start();
  server.create(namespace('default'));
  for (const o of objects) server.create(o);
  const kubeConfig = kubeConfigFor(server);
  const writer = new KubeStatusWriter({ kubeConfig, host: 'node-a', now: () => FIXED_NOW });
  const source = new KubeSource({ kubeConfig, nodeName: 'node-a', debounceMs: 20, statusWriter: writer });
  t.after(async () => {
    source.close();
    await server.close();
  });
  return { server, source, writer };
}

function route(name: string, parentService: string, backend: string, backendPort = 80): KubeObject {
  const r = httpRoute(name, parentService);
  (r.spec as { rules: unknown[] }).rules = [{ backendRefs: [{ name: backend, port: backendPort }] }];
  return r;
}

test('routes get one status.parents entry per Service parent: Accepted, ResolvedRefs with the spec\'s reasons', async (t) => {
  const { server, source } = await start(t, [
    service('web', { ports: [{ port: 80 }] }),
    route('good', 'web', 'web'),
    route('missing-backend', 'web', 'gone'),
    route('missing-parent', 'nowhere', 'web'),
  ]);
  await source.load();
  await eventually(() => summary(server, 'good') !== undefined && summary(server, 'missing-backend') !== undefined && summary(server, 'missing-parent') !== undefined, 'three route statuses');
  assert.equal(summary(server, 'good'), 'web: Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs');
  assert.equal(summary(server, 'missing-backend'), 'web: Accepted=True/Accepted ResolvedRefs=False/BackendNotFound');
  assert.equal(summary(server, 'missing-parent'), 'nowhere: Accepted=False/NoMatchingParent ResolvedRefs=True/ResolvedRefs');
  const entry = parents(server.get(GROUP, 'HTTPRoute', 'default', 'missing-backend'))[0]!;
  assert.deepEqual(entry.parentRef, { group: '', kind: 'Service', name: 'web' }, 'the parentRef as the route wrote it');
  assert.match(entry.conditions[1]!.message, /Service default\/gone does not exist/);
  assert.equal(entry.conditions[0]!.lastTransitionTime, '2025-01-02T03:04:05Z');
  const noParent = parents(server.get(GROUP, 'HTTPRoute', 'default', 'missing-parent'))[0]!;
  assert.match(noParent.conditions[0]!.message, /Service default\/nowhere does not exist/);

  // Fixing the objects clears the conditions: the backend Service appears, the parent is corrected.
  const patchesBefore = server.statusPatches.length;
  server.create(service('gone', { ports: [{ port: 80 }] }));
  const fixed = server.get(GROUP, 'HTTPRoute', 'default', 'missing-parent')!;
  server.update({ ...fixed, spec: { ...(fixed.spec as object), parentRefs: [{ group: '', kind: 'Service', name: 'web' }] } });
  await eventually(() => summary(server, 'missing-backend') === 'web: Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs' && summary(server, 'missing-parent') === 'web: Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs', 'the fixed routes to be accepted and resolved');
  // Only the routes whose status changed were written (the good one stayed as it was).
  const written = server.statusPatches.slice(patchesBefore).filter((p) => p.status === 200).map((p) => p.name);
  assert.deepEqual([...new Set(written)].sort(), ['missing-backend', 'missing-parent']);
});

test('a rejected route is Accepted=False UnsupportedValue; other controllers\' entries are kept; unchanged status is not rewritten', async (t) => {
  const bad = route('bad', 'web', 'web');
  (bad.spec as { rules: Array<Record<string, unknown>> }).rules[0]!.filters = [{ type: 'ExtensionRef', extensionRef: { group: 'g', kind: 'k', name: 'n' } }];
  const theirs = { parentRef: { name: 'gw' }, controllerName: 'example.com/gateway', conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'by another controller', lastTransitionTime: '2025-01-01T00:00:00Z' }] };
  const { server, source, writer } = await start(t, [service('web', { ports: [{ port: 80 }] }), { ...bad, status: { parents: [theirs] } }]);
  await source.load();
  await eventually(() => summary(server, 'bad') !== undefined, 'the rejected route\'s status');
  assert.equal(summary(server, 'bad'), 'web: Accepted=False/UnsupportedValue ResolvedRefs=Unknown/ResolvedRefs');
  const stored = server.get(GROUP, 'HTTPRoute', 'default', 'bad')!;
  assert.deepEqual(parents(stored)[0], theirs, 'another controller\'s entry stays first and untouched');
  assert.match(parents(stored)[1]!.conditions[0]!.message, /^spec\.rules\[0\]\.filters\[0\]\.type: .*ExtensionRef/);
  // The same verdict again, over the object as stored: nothing to write.
  const patches = server.statusPatches.length;
  const verdict = { object: stored as K8sObject, plural: 'httproutes', namespaced: true, parents: [] as never[] };
  assert.equal(await writer.write({ ...verdict, parents: parents(stored).slice(1).map((p) => ({ parentRef: p.parentRef as never, controllerName: p.controllerName, conditions: p.conditions.map(({ type, status, reason, message }) => ({ type, status, reason, message })) as never })) }), 'unchanged');
  assert.equal(server.statusPatches.length, patches);
  // A route whose parent changes to a Gateway loses nodemesh's entry, and keeps the other.
  server.update({ ...stored, spec: { ...(stored.spec as object), parentRefs: [{ name: 'gw' }] } });
  await eventually(() => summary(server, 'bad') === undefined, 'nodemesh\'s entry to be removed');
  assert.deepEqual(parents(server.get(GROUP, 'HTTPRoute', 'default', 'bad')), [theirs]);
});

test('a follower compiles no route statuses and writes none; gaining leadership writes them', async (t) => {
  const server = await FakeApiServer.start();
  server.create(namespace('default'));
  server.create(service('web', { ports: [{ port: 80 }] }));
  server.create(route('good', 'web', 'web'));
  const kubeConfig = kubeConfigFor(server);
  const leader = new ManualLeadership();
  const writer = new KubeStatusWriter({ kubeConfig, host: 'node-a', leader, now: () => FIXED_NOW });
  const source = new KubeSource({ kubeConfig, nodeName: 'node-a', debounceMs: 20, statusWriter: writer });
  t.after(async () => {
    source.close();
    await server.close();
  });
  await source.load();
  assert.equal(summary(server, 'good'), undefined, 'a follower writes no route status');
  assert.equal(server.statusPatches.length, 0);
  leader.set(true);
  await eventually(() => summary(server, 'good') !== undefined, 'the new leader to write the route status');
  assert.equal(summary(server, 'good'), 'web: Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs');
});
