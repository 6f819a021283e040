import assert from 'node:assert/strict';
import test, { type TestContext } from 'node:test';
import type { K8sObject } from '../config/k8s-yaml';
import { KubeSource, type KubeSourceResult } from './kube-source';
import { KubeStatusWriter, rejectionEventName } from './status-writer';
import { namespace, pod, service, trafficPolicy } from './testing/cluster-objects';
import { FakeApiServer, kubeConfigFor, type KubeObject } from './testing/fake-apiserver';
import { ResultLog, eventually, sleep } from './testing/results';
import { ManualLeadership } from './testing/manual-leadership';
import { pollUntil } from '../util/deadline';

const GOOD = { targetRef: { group: '', kind: 'Service', name: 'web' } };
const BAD = { loadBalancer: { type: 'RoundRobin' } }; // no targetRef
const FIXED_NOW = new Date('2025-01-02T03:04:05.678Z');

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
}

function accepted(object: KubeObject | undefined): Condition | undefined {
  const conditions = ((object?.status as { conditions?: Condition[] } | undefined)?.conditions ?? []) as Condition[];
  return conditions.find((c) => c.type === 'Accepted');
}

async function start(t: TestContext) {
  const server = await FakeApiServer.start();
  server.create(namespace('default'));
  server.create(pod('web-1', { ip: '10.1.0.11', labels: { app: 'web' } }));
  server.create(service('web', { selector: { app: 'web' } }));
  server.create(trafficPolicy('good', GOOD));
  server.create(trafficPolicy('bad', BAD));
  const kubeConfig = kubeConfigFor(server);
  const writer = new KubeStatusWriter({ kubeConfig, host: 'node-a', now: () => FIXED_NOW });
  const source = new KubeSource({ kubeConfig, nodeName: 'node-a', debounceMs: 20, statusWriter: writer });
  t.after(async () => {
    source.close();
    await server.close();
  });
  return { server, source, writer, kubeConfig };
}

test('a malformed TrafficPolicy gets Accepted=False and a Warning Event; the rest applies', async (t) => {
  const { server, source } = await start(t);
  const result = await source.load();

  // The result: the bad policy is rejected and left out, everything else is there.
  assert.deepEqual(
    result.rejected.map((r) => [r.object, r.path]),
    [['TrafficPolicy default/bad', 'spec.targetRef']],
  );
  assert.match(result.rejected[0]!.reason, /^\/apis\/nodemesh\.dev\/v1alpha1\/namespaces\/default\/trafficpolicies\/bad: TrafficPolicy default\/bad: spec\.targetRef: required/);
  assert.deepEqual(
    result.others.map((o) => o.name),
    ['good'],
  );
  assert.deepEqual(
    result.pods.map((p) => p.name),
    ['web-1'],
  );
  assert.deepEqual(
    result.services.map((s) => s.name),
    ['web'],
  );

  const log = new ResultLog<KubeSourceResult>();
  source.watch(log.push);

  // Status conditions, through the status subresource with a merge patch.
  const bad = await eventually(() => {
    const object = server.get('nodemesh.dev/v1alpha1', 'TrafficPolicy', 'default', 'bad');
    return accepted(object) ? object : undefined;
  }, 'the bad policy’s condition');
  assert.deepEqual(accepted(bad), {
    type: 'Accepted',
    status: 'False',
    reason: 'Invalid',
    message: 'spec.targetRef: required: the Service this policy attaches to, e.g. { group: "", kind: Service, name: my-service }',
    observedGeneration: 1,
    lastTransitionTime: '2025-01-02T03:04:05Z',
  });
  const good = await eventually(() => accepted(server.get('nodemesh.dev/v1alpha1', 'TrafficPolicy', 'default', 'good')), 'the good policy’s condition');
  assert.equal(good.status, 'True');
  assert.equal(good.reason, 'Accepted');
  assert.equal(good.observedGeneration, 1);
  for (const patch of server.statusPatches) {
    assert.equal(patch.contentType, 'application/merge-patch+json');
    assert.equal(patch.status, 200);
  }

  // One Warning Event for the rejection.
  const events = await eventually(() => {
    const list = server.list('v1', 'Event');
    return list.length > 0 ? list : undefined;
  }, 'the Event');
  assert.equal(events.length, 1);
  const event = events[0]! as K8sObject & Record<string, any>;
  assert.equal(event.metadata!.name, rejectionEventName('bad', bad.metadata!.uid!, accepted(bad)!.message));
  assert.equal(event.metadata!.namespace, 'default');
  assert.equal(event.type, 'Warning');
  assert.equal(event.reason, 'Rejected');
  assert.equal(event.message, accepted(bad)!.message);
  assert.equal(event.count, 1);
  assert.deepEqual(event.source, { component: 'nodemesh-agent', host: 'node-a' });
  assert.equal(event.involvedObject.kind, 'TrafficPolicy');
  assert.equal(event.involvedObject.apiVersion, 'nodemesh.dev/v1alpha1');
  assert.equal(event.involvedObject.name, 'bad');
  assert.equal(event.involvedObject.uid, bad.metadata!.uid);

  // Status writes come back through the watch, but change no configuration: no report,
  // and no second write.
  await sleep(300);
  assert.equal(server.statusPatches.length, 2);
  assert.equal(log.all.length, 0, 'status-only changes are not reported');

  // The same mistake in a new generation: observedGeneration moves, the same Event counts 2.
  const again = server.get('nodemesh.dev/v1alpha1', 'TrafficPolicy', 'default', 'bad')!;
  again.spec = { ...BAD, loadBalancer: { type: 'Random' } };
  server.update(again);
  await eventually(() => accepted(server.get('nodemesh.dev/v1alpha1', 'TrafficPolicy', 'default', 'bad'))?.observedGeneration === 2, 'generation 2 observed');
  await eventually(() => (server.list('v1', 'Event')[0] as Record<string, any>).count === 2, 'the Event’s count to reach 2');
  assert.equal(server.list('v1', 'Event').length, 1, 'repeated rejections reuse the Event');
  assert.deepEqual(
    server.eventWrites.map((w) => `${w.method} ${w.status}`),
    ['POST 201', 'PATCH 200'],
    'the count comes from memory: no read needed (the agent may only create and patch events)',
  );

  // A different mistake is another Event.
  const other = server.get('nodemesh.dev/v1alpha1', 'TrafficPolicy', 'default', 'bad')!;
  other.spec = { targetRef: { kind: 'Deployment', name: 'web' } };
  server.update(other);
  await eventually(() => accepted(server.get('nodemesh.dev/v1alpha1', 'TrafficPolicy', 'default', 'bad'))?.message.startsWith('spec.targetRef.kind'), 'the new reason');
  await eventually(() => server.list('v1', 'Event').length === 2, 'a second Event');

  // Fixed: accepted, and back in the configuration.
  const fixed = server.get('nodemesh.dev/v1alpha1', 'TrafficPolicy', 'default', 'bad')!;
  fixed.spec = { targetRef: { group: '', kind: 'Service', name: 'api' } };
  server.update(fixed);
  const r = await log.until((x) => x.rejected.length === 0 && x.others.length === 2, 'the fixed policy applied');
  assert.deepEqual(r.others.map((o) => o.name).sort(), ['bad', 'good']);
  const final = await eventually(() => {
    const c = accepted(server.get('nodemesh.dev/v1alpha1', 'TrafficPolicy', 'default', 'bad'));
    return c?.status === 'True' ? c : undefined;
  }, 'Accepted=True after the fix');
  assert.equal(final.observedGeneration, 4);
  assert.equal(server.list('v1', 'Event').length, 2, 'no Event for an accepted object');
});

test('the writer keeps other conditions, retries a conflict once, and skips what is already written', async (t) => {
  const { server, writer } = await start(t);
  const stored = server.get('nodemesh.dev/v1alpha1', 'TrafficPolicy', 'default', 'bad')!;
  // Someone else's condition, written after we read the object: our copy is stale.
  const stale = structuredClone(stored) as K8sObject;
  const theirs = { type: 'Programmed', status: 'True', reason: 'Done', message: 'by another controller', lastTransitionTime: '2025-01-01T00:00:00Z' };
  server.update({ ...stored, status: { conditions: [theirs] } });

  const outcome = await writer.write({ object: stale, plural: 'trafficpolicies', namespaced: true, accepted: false, message: 'spec.x: bad' });
  assert.equal(outcome, 'written');
  assert.deepEqual(
    server.statusPatches.map((p) => p.status),
    [409, 200],
    'the first patch was conditional on the stale resourceVersion',
  );
  const now = server.get('nodemesh.dev/v1alpha1', 'TrafficPolicy', 'default', 'bad')!;
  const conditions = (now.status as { conditions: Condition[] }).conditions;
  assert.deepEqual(
    conditions.map((c) => `${c.type}=${c.status}`),
    ['Programmed=True', 'Accepted=False'],
  );

  // Already what it should be (written by us, or by the agent of another node): nothing to do.
  const patches = server.statusPatches.length;
  const events = server.eventWrites.length;
  assert.equal(await writer.write({ object: now as K8sObject, plural: 'trafficpolicies', namespaced: true, accepted: false, message: 'spec.x: bad' }), 'unchanged');
  const fresh = new KubeStatusWriter({ kubeConfig: kubeConfigFor(server), host: 'node-b' });
  assert.equal(await fresh.write({ object: now as K8sObject, plural: 'trafficpolicies', namespaced: true, accepted: false, message: 'spec.x: bad' }), 'unchanged');
  assert.equal(server.statusPatches.length, patches);
  assert.equal(server.eventWrites.length, events);

  // While our own write has not come back through the watch, the old copy is not rewritten.
  assert.equal(await writer.write({ object: stale, plural: 'trafficpolicies', namespaced: true, accepted: false, message: 'spec.x: bad' }), 'unchanged');

  // An object that is gone is not an error.
  server.delete(now);
  assert.equal(await writer.write({ object: now as K8sObject, plural: 'trafficpolicies', namespaced: true, accepted: true }), 'gone');
});

test('two TrafficPolicies for one Service: the newer is rejected as a conflict (the policy parser decides)', async (t) => {
  const { server, source } = await start(t);
  await sleep(1100); // creationTimestamp has whole seconds: make "second" clearly newer
  server.create(trafficPolicy('second', GOOD));
  const result = await source.load();
  assert.deepEqual(
    result.others.map((o) => o.name),
    ['good'],
  );
  const conflict = await eventually(() => accepted(server.get('nodemesh.dev/v1alpha1', 'TrafficPolicy', 'default', 'second')), 'the conflict condition');
  assert.equal(conflict.status, 'False');
  assert.match(conflict.message, /^spec\.targetRef: conflict: Service default\/web already has TrafficPolicy default\/good/);
});

test('after a restart an existing Event is read and bumped; an expired one is created again', async (t) => {
  const { server, kubeConfig } = await start(t);
  const object = server.get('nodemesh.dev/v1alpha1', 'TrafficPolicy', 'default', 'bad')! as K8sObject;
  const verdict = { object, plural: 'trafficpolicies', namespaced: true, accepted: false, message: 'spec.x: bad' };
  const first = new KubeStatusWriter({ kubeConfig, host: 'node-a' });
  assert.equal(await first.write(verdict), 'written');
  // A new process: the status is cleared by someone, the same rejection happens again.
  const cleared = server.update({ ...(server.get('nodemesh.dev/v1alpha1', 'TrafficPolicy', 'default', 'bad') as object), status: {} });
  const second = new KubeStatusWriter({ kubeConfig, host: 'node-a' });
  assert.equal(await second.write({ ...verdict, object: cleared as K8sObject }), 'written');
  const [event] = server.list('v1', 'Event') as Array<Record<string, any>>;
  assert.equal(event!.count, 2);
  assert.deepEqual(
    server.eventWrites.map((w) => `${w.method} ${w.status}`),
    ['POST 201', 'POST 409', 'PATCH 200'],
  );
  // The Event expires; the writer that remembers it creates it anew.
  server.delete(event!);
  const again = server.update({ ...(server.get('nodemesh.dev/v1alpha1', 'TrafficPolicy', 'default', 'bad') as object), status: {} });
  assert.equal(await second.write({ ...verdict, object: again as K8sObject }), 'written');
  assert.equal((server.list('v1', 'Event')[0] as Record<string, any>).count, 1);
});

test('with a leader gate, a follower writes nothing; gaining leadership writes the latest verdicts', async (t) => {
  const server = await FakeApiServer.start();
  server.create(namespace('default'));
  server.create(trafficPolicy('good', GOOD));
  server.create(trafficPolicy('bad', BAD));
  const kubeConfig = kubeConfigFor(server);
  const leader = new ManualLeadership();
  const writer = new KubeStatusWriter({ kubeConfig, host: 'node-a', leader, now: () => FIXED_NOW });
  const source = new KubeSource({ kubeConfig, nodeName: 'node-a', debounceMs: 20, statusWriter: writer });
  t.after(async () => {
    source.close();
    await server.close();
  });
  const good = server.get('nodemesh.dev/v1alpha1', 'TrafficPolicy', 'default', 'good')!;
  assert.deepEqual(await writer.apply([{ object: good as K8sObject, plural: 'trafficpolicies', namespaced: true, accepted: true }]), ['skipped']);
  await source.load();
  // The source handed its verdicts to the writer, which skipped them: nothing reached the server.
  assert.equal(server.statusPatches.length, 0);
  assert.equal(server.eventWrites.length, 0);

  leader.set(true);
  assert.ok(await pollUntil(() => server.statusPatches.length === 2 && server.eventWrites.length === 1, Date.now() + 5000), 'the new leader writes both statuses and the Event');
  assert.equal(accepted(server.get('nodemesh.dev/v1alpha1', 'TrafficPolicy', 'default', 'good'))?.status, 'True');
  assert.equal(accepted(server.get('nodemesh.dev/v1alpha1', 'TrafficPolicy', 'default', 'bad'))?.status, 'False');

  // Leadership lost: a new rejection is not written.
  leader.set(false);
  server.create(trafficPolicy('bad-2', BAD));
  assert.ok(await pollUntil(() => source.status().find((s) => s.resource === 'trafficpolicies')?.objects === 3, Date.now() + 5000), 'the source saw bad-2');
  const bad2 = server.get('nodemesh.dev/v1alpha1', 'TrafficPolicy', 'default', 'bad-2')!;
  assert.deepEqual(await writer.apply([{ object: bad2 as K8sObject, plural: 'trafficpolicies', namespaced: true, accepted: false, message: 'x' }]), ['skipped']);
  assert.equal(server.statusPatches.length, 2);
});
