/**
 * An agent hand-over that the new agent does not survive (issue 15: "A test that kills the
 * new agent half-way through a hand-over: the old one keeps serving; nothing leaks").
 *
 * node1's agent A relays four long TCP connections (two c1 → d1 outbound, two d1 → c1
 * inbound). A new agent B for the same instance is started with the test hook
 * NODEMESH_HANDOVER_PAUSE_AT (src/runtime/handover/pause-hook.ts) and SIGKILLed where it
 * pauses: after the listeners, and after the first half of the connections. Each time A
 * must go on serving what it still holds and accept new connections (captured: they are
 * in A's connection log), with exactly the descriptors it should have and, in eBPF mode,
 * the same listener socket in the sockhash. Then a third agent C takes over for good: A
 * exits 0 by itself and the connections A still held carry on through C.
 *
 * Topology: test/fixtures/handover/topology.yaml. Both capture modes, each its own sim.
 */
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminGet } from '../src/admin/admin-client';
import { pidSocketPath } from '../src/admin/admin-server';
import type { PodRecord } from '../src/admin/debug-replies';
import { pinDirFor, runDirFor } from '../src/agent/build-agent';
import { AF_INET, encodeListenerKey } from '../src/capture/ebpf/bpf-layout';
import { getNative } from '../src/datapath/native';
import type { ConnectionRecord } from '../src/proxy/connection-log';
import type { HandoverStatus } from '../src/runtime/handover/status';
import { ROOT, SimFixture, uniqueSimName, waitFor, type AgentHandle, type HeldConnection } from '../src/sim/harness';
import { withDeadline } from '../src/util/deadline';
import { requireRoot } from './helpers/privileges';

const TOPOLOGY = join(ROOT, 'test', 'fixtures', 'handover', 'topology.yaml');
const C1 = '10.244.1.21';
const D1 = '10.244.1.22';
const AGENT_EXIT_MS = 30_000;


/** The socket cookie nm_out_listen_v1 holds for a namespace's IPv4 outbound listener (eBPF mode). */
function outboundListenerCookie(instance: string, netnsCookie: bigint): string | undefined {
  const bpf = getNative();
  const fd = bpf.objGet(join(pinDirFor('/sys/fs/bpf', instance), 'maps', 'nm_out_listen_v1'));
  try {
    return bpf.mapLookup(fd, encodeListenerKey(netnsCookie, AF_INET))?.toString('hex');
  } finally {
    bpf.close(fd);
  }
}

function handover(pid: number, instance: string): Promise<HandoverStatus> {
  return adminGet<HandoverStatus>(pidSocketPath(join(runDirFor(instance), 'admin.sock'), pid), '/debug/handover');
}

for (const mode of ['ebpf', 'iptables'] as const) {
  describe(`agent hand-over aborted half-way (${mode})`, { concurrency: false, timeout: 400_000 }, () => {
    let sim: SimFixture | undefined;
    let dir = '';
    const held: HeldConnection[] = [];

    before(async () => {
      if (process.getuid?.() !== 0) return;
      dir = mkdtempSync(join(tmpdir(), 'nm-handover-'));
      copyFileSync(TOPOLOGY, join(dir, 'topology.yaml'));
      sim = await new SimFixture(uniqueSimName('ho'), dir).up();
      await sim.startEchoServer('demo/c1', [8080]);
      await sim.startEchoServer('demo/d1', [8080]);
    });

    after(async () => {
      for (const h of held) h.close();
      await sim?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    /** A new connection from c1 to d1 works and went through `agent` (its record in the connection log). */
    async function newConnectionThrough(agent: AgentHandle, socket: string, what: string): Promise<void> {
      const before = (await adminGet<ConnectionRecord[]>(socket, '/debug/connections?pod=demo/c1')).length;
      const reply = await sim!.client('demo/c1', D1, 8080, `new ${what}`);
      assert.equal(reply.error, undefined, `a new connection ${what} failed: ${reply.error}`);
      assert.match(reply.reply ?? '', new RegExp(`new ${what}`));
      await waitFor(`the new connection ${what} in ${agent.instance}'s connection log`, async () => (await adminGet<ConnectionRecord[]>(socket, '/debug/connections?pod=demo/c1')).length > before);
    }

    /**
     * The descriptors `pid` holds on TCP sockets of c1's namespace (listeners and relays:
     * all of node1's proxy sockets here). A duplicate kept by mistake is one more.
     */
    async function podSocketFds(pid: number): Promise<number> {
      const out = await sim!.runInPod('demo/c1', ['ss', '-Htanp']);
      return out.split(`pid=${pid},`).length - 1;
    }

    /** Which held connections still carry bytes both ways. */
    async function working(label: string): Promise<boolean[]> {
      return Promise.all(held.map((h, i) => h.roundTrip(`${label} ${i}`).then(() => true, () => false)));
    }

    /** Starts a new agent for node1 with the pause hook and kills it where it pauses. */
    async function killHalfWay(agentA: AgentHandle, point: string): Promise<HandoverStatus> {
      const b = sim!.spawnAgent('node1', ['--capture', mode], undefined, { env: { NODEMESH_HANDOVER_PAUSE_AT: point } });
      const bPid = b.child.pid!;
      await waitFor(`the new agent to pause at ${point} (log: ${b.log.slice(-1500)})`, async () => (await handover(bPid, agentA.instance)).pausedAt === point, 60_000);
      b.child.kill('SIGKILL');
      await withDeadline(once(b.child, 'exit'), 10_000, 'the SIGKILLed new agent');
      return waitFor(`the old agent to see the hand-over fail (log: ${agentA.log.slice(-1500)})`, async () => {
        const s = await handover(agentA.child.pid!, agentA.instance);
        return s.state === 'failed' ? s : undefined;
      }, 40_000);
    }

    test(`killed after the listeners and after half the connections: the old agent serves on, nothing leaks; a later hand-over succeeds (${mode})`, async (t: TestContext) => {
      if (!requireRoot(t)) return;
      const a = await sim!.startAgent('node1', ['--capture', mode, '--drain-ms', '3000']);
      const c1 = (await a.waitPod('demo/c1', 'enrolled')) as PodRecord & { netnsCookie: string };
      const aPid = a.child.pid!;
      const aSocket = pidSocketPath(a.socket, aPid);
      for (const [pod, host] of [['demo/c1', D1], ['demo/c1', D1], ['demo/d1', C1], ['demo/d1', C1]] as const) {
        const h = sim!.hold(pod, host, 8080);
        held.push(h);
        await h.ready;
        await h.roundTrip('before');
      }
      await waitFor('four relays open in the old agent', async () => (await adminGet<unknown[]>(aSocket, '/debug/open')).length >= 8);
      const cookie = mode === 'ebpf' ? outboundListenerCookie(a.instance, BigInt(c1.netnsCookie)) : undefined;
      if (mode === 'ebpf') assert.ok(cookie, 'no outbound listener in nm_out_listen_v1 for c1');
      const fds0 = await podSocketFds(aPid);

      // 1. Killed after it adopted the listeners, before the old agent was told.
      const first = await killHalfWay(a, 'after-listeners');
      assert.equal(first.connections, 0);
      assert.deepEqual(await working('after the first kill'), [true, true, true, true], 'the old agent lost a connection it held');
      await newConnectionThrough(a, aSocket, 'after the first kill');
      await waitFor(`the old agent's descriptors back to ${fds0}`, async () => (await podSocketFds(aPid)) === fds0, 10_000).catch(async () => {
        assert.equal(await podSocketFds(aPid), fds0, 'socket descriptors of the old agent in c1 after the first aborted hand-over');
      });

      // 2. Killed with half the relays handed: those died with it; the rest are the old agent's.
      const second = await killHalfWay(a, 'after-half-connections');
      assert.equal(second.connections, 2, `relays handed before the kill: ${JSON.stringify(second)}`);
      const alive = await working('after the second kill');
      assert.equal(alive.filter(Boolean).length, 2, `the old agent lost a connection it still held: ${JSON.stringify(alive)}`);
      await newConnectionThrough(a, aSocket, 'after the second kill');
      await waitFor(`the old agent's descriptors back to ${fds0 - 4}`, async () => (await podSocketFds(aPid)) === fds0 - 4, 10_000).catch(async () => {
        assert.equal(await podSocketFds(aPid), fds0 - 4, 'socket descriptors of the old agent in c1 after the second aborted hand-over (two relays, four sockets, went)');
      });
      if (mode === 'ebpf') assert.equal(outboundListenerCookie(a.instance, BigInt(c1.netnsCookie)), cookie, 'the sockhash no longer holds the same listener');
      const listenersA = await sim!.runInPod('demo/c1', ['ss', '-Htlnp', 'sport', '=', ':15001']);
      assert.match(listenersA, new RegExp(`pid=${aPid},`), `15001 in c1 is not the old agent's: ${listenersA}`);

      // 3. A hand-over that completes: the old agent exits 0 by itself, the survivors carry on.
      const c = sim!.spawnAgent('node1', ['--capture', mode, '--drain-ms', '3000']);
      const [code] = (await withDeadline(once(a.child, 'exit'), AGENT_EXIT_MS, 'the old agent after the hand-over')) as [number | null];
      assert.equal(code, 0, `the old agent's exit; log:\n${a.log.slice(-2000)}`);
      const cStatus = await waitFor('the new agent to finish its hand-over', async () => {
        const s = await handover(c.child.pid!, a.instance);
        return s.state === 'done' ? s : undefined;
      }, 30_000);
      assert.equal(cStatus.connections, 2, `relays the new agent took: ${JSON.stringify(cStatus)}`);
      // The old agent's exit left the new one's sockets at the instance's paths (the next hand-over's).
      assert.ok(existsSync(join(runDirFor(a.instance), 'handover.sock')), 'handover.sock is gone after the old agent exited');
      assert.equal((await adminGet<HandoverStatus>(c.socket, '/debug/handover')).role, 'receiver', 'admin.sock is not the new agent\'s');
      const survivors = alive.map((ok, i) => (ok ? i : -1)).filter((i) => i >= 0);
      const afterTakeover = await working('after the take-over');
      for (const i of survivors) assert.equal(afterTakeover[i], true, `held connection ${i} did not survive the hand-over`);
      await newConnectionThrough(c, pidSocketPath(c.socket, c.child.pid!), 'after the take-over');
      if (mode === 'ebpf') assert.equal(outboundListenerCookie(a.instance, BigInt(c1.netnsCookie)), cookie, 'the new agent did not keep the same listener socket');
      const listenersC = await sim!.runInPod('demo/c1', ['ss', '-Htlnp', 'sport', '=', ':15001']);
      assert.match(listenersC, new RegExp(`pid=${c.child.pid},`), `15001 in c1 is not the new agent's: ${listenersC}`);
      assert.doesNotMatch(listenersC, new RegExp(`pid=${aPid},`));
      assert.equal(await c.stop(), 0);
    });
  });
}
