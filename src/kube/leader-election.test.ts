import assert from 'node:assert/strict';
import test, { type TestContext } from 'node:test';
import { hasCode } from '../errors';
import { pollUntil } from '../util/deadline';
import { LeaderElection, forbiddenError, leaderTimings, type LeaderElectionOptions } from './leader-election';
import { FakeApiServer, kubeConfigFor, type KubeObject } from './testing/fake-apiserver';

const NS = 'nodemesh-system';
const NAME = 'nodemesh-agent-status-writer';
/** Short enough for tests, in the proportions the agent uses. */
const FAST = { leaseDurationSeconds: 1, renewDeadlineMs: 600, retryPeriodMs: 100, requestTimeoutMs: 250, stopTimeoutMs: 1000 };

const electors = new Map<FakeApiServer, LeaderElection[]>();

/** A fake API server; at the test's end its electors stop (releasing while it still answers), then it closes. */
async function start(t: TestContext): Promise<FakeApiServer> {
  const server = await FakeApiServer.start();
  electors.set(server, []);
  t.after(async () => {
    await Promise.all(electors.get(server)!.map((e) => e.stop()));
    electors.delete(server);
    await server.close();
  });
  return server;
}

function elector(server: FakeApiServer, identity: string, options: Partial<LeaderElectionOptions> = {}): LeaderElection {
  const e = new LeaderElection({ kubeConfig: kubeConfigFor(server), namespace: NS, name: NAME, identity, ...FAST, ...options });
  electors.get(server)!.push(e);
  return e;
}

function lease(server: FakeApiServer): { holderIdentity?: string; leaseDurationSeconds?: number; leaseTransitions?: number; acquireTime?: string; renewTime?: string } {
  return (server.get('coordination.k8s.io/v1', 'Lease', NS, NAME)?.spec ?? {}) as ReturnType<typeof lease>;
}

function leaseObject(spec: Record<string, unknown>): KubeObject {
  return { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: NAME, namespace: NS }, spec };
}

/** Lease requests answered so far (by method and status). */
function leaseRequests(server: FakeApiServer, method?: string, status?: number): number {
  return server.requests.filter((r) => r.path.includes('/leases') && (method === undefined || r.method === method) && (status === undefined || r.status === status)).length;
}

/** Fails the test if both ever lead at the same moment. */
function neverBoth(a: LeaderElection, b: LeaderElection): { violations: number } {
  const seen = { violations: 0 };
  const check = (): void => {
    if (a.isLeader && b.isLeader) seen.violations += 1;
  };
  a.onChange(check);
  b.onChange(check);
  return seen;
}

const within = (ms: number): number => Date.now() + ms;

test('the timings follow client-go: 15 s lease, 10 s renew deadline, 2 s retry period', () => {
  assert.deepEqual(leaderTimings(15), { renewDeadlineMs: 10_000, retryPeriodMs: 2000 });
});

test('options that would let two agents lead are refused', async (t) => {
  const server = await start(t);
  const kubeConfig = kubeConfigFor(server);
  // The renew deadline must be shorter than the lease, the retry period shorter than the deadline.
  assert.throws(() => new LeaderElection({ kubeConfig, namespace: NS, name: NAME, identity: 'a', leaseDurationSeconds: 1, renewDeadlineMs: 1000, retryPeriodMs: 100 }), (err) => hasCode(err, 'ERR_NM_LEADER_OPTIONS'));
  assert.throws(() => new LeaderElection({ kubeConfig, namespace: NS, name: NAME, identity: 'a', leaseDurationSeconds: 1, renewDeadlineMs: 500, retryPeriodMs: 500 }), (err) => hasCode(err, 'ERR_NM_LEADER_OPTIONS'));
  assert.throws(() => new LeaderElection({ kubeConfig, namespace: NS, name: NAME, identity: '' }), (err) => hasCode(err, 'ERR_NM_LEADER_OPTIONS'));
});

test('the first agent creates the Lease and leads; a second one follows', async (t) => {
  const server = await start(t);
  const a = elector(server, 'node-a');
  const changes: boolean[] = [];
  a.onChange((leading) => changes.push(leading));
  a.start();
  assert.ok(await pollUntil(() => a.isLeader, within(3000)), 'a leads');
  const spec = lease(server);
  assert.equal(spec.holderIdentity, 'node-a');
  assert.equal(spec.leaseDurationSeconds, 1);
  assert.equal(spec.leaseTransitions, 0);
  // metav1.MicroTime: RFC 3339 with six fractional digits.
  assert.match(spec.renewTime ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  assert.match(spec.acquireTime ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);

  const b = elector(server, 'node-b');
  const seen = neverBoth(a, b);
  b.start();
  // Several renewals by a, several reads by b.
  const putsBefore = leaseRequests(server, 'PUT', 200);
  assert.ok(await pollUntil(() => leaseRequests(server, 'PUT', 200) >= putsBefore + 4, within(3000)), 'a keeps renewing');
  assert.equal(a.isLeader, true);
  assert.equal(b.isLeader, false);
  assert.equal(b.holder, 'node-a');
  assert.equal(seen.violations, 0);
  assert.equal(lease(server).holderIdentity, 'node-a');
  assert.equal(lease(server).acquireTime, spec.acquireTime, 'renewing keeps acquireTime');
  assert.equal(lease(server).leaseTransitions, 0);
  assert.deepEqual(changes, [true]);
});

test('stop() of the leader releases the Lease: the follower takes over long before it would expire', async (t) => {
  const server = await start(t);
  // A 5 s lease: a takeover by expiry could not happen within the bound below.
  const slow = { leaseDurationSeconds: 5, renewDeadlineMs: 3000 };
  const a = elector(server, 'node-a', slow);
  const b = elector(server, 'node-b', slow);
  const seen = neverBoth(a, b);
  a.start();
  assert.ok(await pollUntil(() => a.isLeader, within(3000)));
  b.start();
  assert.ok(await pollUntil(() => b.holder === 'node-a', within(3000)), 'b saw a holding it');

  const stopped = Date.now();
  const stopping = a.stop();
  assert.equal(a.isLeader, false, 'stops leading at once, before the release is written');
  await stopping;
  assert.ok(Date.now() - stopped < 1000, 'stop() is bounded');
  assert.ok(await pollUntil(() => b.isLeader, within(2000)), 'b leads soon after the release');
  assert.ok(Date.now() - stopped < 5000 - 1000, 'well before the 5 s lease would have expired');
  assert.equal(lease(server).holderIdentity, 'node-b');
  assert.equal(lease(server).leaseTransitions, 1);
  assert.equal(seen.violations, 0);
});

test('a released Lease says so: no holder, 1 s', async (t) => {
  const server = await start(t);
  const a = elector(server, 'node-a');
  a.start();
  assert.ok(await pollUntil(() => a.isLeader, within(3000)));
  await a.stop();
  assert.equal(lease(server).holderIdentity, '');
  assert.equal(lease(server).leaseDurationSeconds, 1);
  const puts = leaseRequests(server, 'PUT');
  await a.stop(); // twice: the same stop, nothing more written
  assert.equal(leaseRequests(server, 'PUT'), puts);
});

test('an expired Lease is taken over; a live one is not', async (t) => {
  const server = await start(t);
  const minuteAgo = new Date(Date.now() - 60_000).toISOString().replace('Z', '000Z');
  server.create(leaseObject({ holderIdentity: 'node-gone', leaseDurationSeconds: 15, acquireTime: minuteAgo, renewTime: minuteAgo, leaseTransitions: 3 }));
  const a = elector(server, 'node-a');
  a.start();
  assert.ok(await pollUntil(() => a.isLeader, within(3000)));
  const spec = lease(server);
  assert.equal(spec.holderIdentity, 'node-a');
  assert.equal(spec.leaseTransitions, 4);
  assert.notEqual(spec.acquireTime, minuteAgo);
  await a.stop();

  // Held by someone who renews: 15 s from now, a never gets it.
  server.delete(leaseObject({}));
  const now = new Date().toISOString().replace('Z', '000Z');
  server.create(leaseObject({ holderIdentity: 'node-live', leaseDurationSeconds: 15, acquireTime: now, renewTime: now, leaseTransitions: 0 }));
  const c = elector(server, 'node-c');
  c.start();
  const gets = leaseRequests(server, 'GET');
  assert.ok(await pollUntil(() => leaseRequests(server, 'GET') >= gets + 5, within(3000)), 'c keeps looking');
  assert.equal(c.isLeader, false);
  assert.equal(c.holder, 'node-live');
  assert.equal(lease(server).holderIdentity, 'node-live');
});

test('a Lease with no holder is taken over at once, whatever its renewTime', async (t) => {
  const server = await start(t);
  const now = new Date().toISOString().replace('Z', '000Z');
  server.create(leaseObject({ holderIdentity: '', leaseDurationSeconds: 15, renewTime: now, leaseTransitions: 1 }));
  const a = elector(server, 'node-a');
  a.start();
  assert.ok(await pollUntil(() => a.isLeader, within(3000)));
  assert.equal(lease(server).leaseTransitions, 2);
});

test('two agents racing for an expired Lease: one 409, exactly one leader', async (t) => {
  const server = await start(t);
  const minuteAgo = new Date(Date.now() - 60_000).toISOString().replace('Z', '000Z');
  server.create(leaseObject({ holderIdentity: 'node-gone', leaseDurationSeconds: 1, renewTime: minuteAgo, leaseTransitions: 0 }));
  const a = elector(server, 'node-a');
  const b = elector(server, 'node-b');
  const seen = neverBoth(a, b);
  // Same tick: both read the same resourceVersion and both PUT over it.
  a.start();
  b.start();
  assert.ok(await pollUntil(() => a.isLeader || b.isLeader, within(3000)));
  const puts = leaseRequests(server, 'PUT', 200);
  assert.ok(await pollUntil(() => leaseRequests(server, 'PUT', 200) >= puts + 3, within(3000)), 'the winner keeps renewing');
  assert.ok(leaseRequests(server, 'PUT', 409) >= 1, 'the loser got a conflict');
  assert.equal([a, b].filter((e) => e.isLeader).length, 1);
  assert.equal(seen.violations, 0);
  const winner = a.isLeader ? 'node-a' : 'node-b';
  assert.equal(lease(server).holderIdentity, winner);
  assert.equal(lease(server).leaseTransitions, 1, 'one takeover, not two');
  assert.equal((a.isLeader ? b : a).holder, winner, 'the loser read the Lease again');
});

for (const failure of [503, 'hang'] as const) {
  test(`losing the API (${failure}) for longer than the renew deadline stops leading; it leads again once the API is back`, async (t) => {
    const server = await start(t);
    const a = elector(server, 'node-a');
    a.start();
    assert.ok(await pollUntil(() => a.isLeader, within(3000)));
    const lost = Date.now();
    server.failResource('leases', failure);
    assert.ok(await pollUntil(() => !a.isLeader, within(3000)), 'a stops leading');
    const after = Date.now() - lost;
    // At most renewDeadline after the last renewal (which was at most a retry period before the
    // outage), and before the 1 s lease expires, when another agent could take it.
    assert.ok(after >= FAST.renewDeadlineMs - FAST.retryPeriodMs - 50, `not before the renew deadline (${after} ms)`);
    assert.ok(after < FAST.leaseDurationSeconds * 1000, `before the lease expires (${after} ms)`);
    server.failResource('leases', undefined);
    assert.ok(await pollUntil(() => a.isLeader, within(3000)), 'a leads again');
    assert.equal(lease(server).holderIdentity, 'node-a');
  });
}

test('a 403 names the missing permission; the elector keeps trying with backoff and leads once allowed', async (t) => {
  const err = forbiddenError('update', NS, NAME, new Error('forbidden'));
  assert.equal(err.code, 'ERR_NM_KUBE_FORBIDDEN');
  assert.match(err.message, /update of Lease nodemesh-system\/nodemesh-agent-status-writer was forbidden \(HTTP 403\)/);
  assert.match(err.hint ?? '', /needs update on coordination\.k8s\.io leases \(resourceNames: \[nodemesh-agent-status-writer\]\) in namespace nodemesh-system/);
  assert.doesNotMatch(forbiddenError('create', NS, NAME, undefined).hint ?? '', /resourceNames/, 'create cannot be limited by name');

  const server = await start(t);
  server.failResource('leases', 403);
  const a = elector(server, 'node-a', { forbiddenBackoff: { initialMs: 50, maxMs: 400 } });
  a.start();
  assert.ok(await pollUntil(() => leaseRequests(server, 'GET', 403) >= 3, within(3000)), 'retried');
  assert.equal(a.isLeader, false);
  server.failResource('leases', undefined);
  assert.ok(await pollUntil(() => a.isLeader, within(3000)));
});
