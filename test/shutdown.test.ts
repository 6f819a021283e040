/**
 * Every stop is bounded (issue: "Every shutdown has a deadline"): a peer that never
 * answers must not keep the agent or the sidecar from exiting. node2's agent is frozen
 * (SIGSTOP) while a connection through it is open; the process on node1 that holds the
 * other end is SIGTERMed with a 2 s drain and must exit within 3 s and free its health
 * port. A second signal cuts a long drain short.
 *
 * Topology: test/fixtures/shutdown/topology.yaml (c1 ambient and d1 plain on node1, b1
 * ambient on node2).
 */
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminGet } from '../src/admin/admin-client';
import { IptablesCapture } from '../src/capture/iptables/iptables-capture';
import { execInPod, waitExit } from '../src/sim/exec';
import { CLI, ROOT, SimFixture, uniqueSimName, waitFor, type AgentHandle, type HeldConnection } from '../src/sim/harness';
import type { SidecarPodRecord } from '../src/admin/debug-replies';
import { withDeadline } from '../src/util/deadline';
import { requireRoot } from './helpers/privileges';

const TOPOLOGY = join(ROOT, 'test', 'fixtures', 'shutdown', 'topology.yaml');
const B1 = '10.244.2.11';
const DRAIN_MS = 2000;
/** The bound: a 2 s drain, then everything destroyed and the process gone. */
const EXIT_WITHIN_MS = 3000;

/** A free TCP port on the host (bound and released). */
async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as { port: number };
  srv.close();
  await once(srv, 'close');
  return port;
}

/** True when `port` can be bound on every host address now (nobody holds it). */
async function portIsFree(port: number): Promise<boolean> {
  const srv = createServer();
  try {
    srv.listen(port, '0.0.0.0');
    await once(srv, 'listening');
    return true;
  } catch {
    return false;
  } finally {
    if (srv.listening) {
      srv.close();
      await once(srv, 'close');
    }
  }
}

/** Resolves with the exit code once `child` has exited, and how long after `since`; fails after `limitMs`. */
async function timedExit(child: ChildProcess, since: number, limitMs: number, what: string): Promise<{ code: number | null; ms: number }> {
  if (child.exitCode !== null || child.signalCode !== null) return { code: child.exitCode, ms: Date.now() - since };
  // A generous deadline for the test itself; the assertion on `ms` is what judges.
  const [code] = (await withDeadline(once(child, 'exit'), limitMs, `the exit of ${what} after SIGTERM`)) as [number | null];
  return { code, ms: Date.now() - since };
}

describe('bounded shutdown on the simulator', { concurrency: false, timeout: 300_000 }, () => {
  let sim: SimFixture | undefined;
  let dir = '';
  let node2: AgentHandle | undefined;
  const frozen = new Set<number>();

  const freeze = (pid: number) => { process.kill(pid, 'SIGSTOP'); frozen.add(pid); };
  const thaw = (pid: number) => { if (frozen.delete(pid)) process.kill(pid, 'SIGCONT'); };

  /** c1 -> b1 through node1's agent and the tunnel to node2; one round trip proves it flows. */
  async function tunnelledConnection(): Promise<HeldConnection> {
    const held = sim!.hold('demo/c1', B1, 8080);
    await held.ready;
    assert.match(await held.roundTrip('before the freeze'), /before the freeze/);
    // The tunnel session is open from inside c1's namespace to b1's 15008 (node2's proxy).
    await waitFor('a tunnel session from c1 to b1:15008', async () => (await sim!.runInPod('demo/c1', ['ss', '-Htn', 'state', 'established', 'dst', `${B1}:15008`])).length > 0);
    return held;
  }

  before(async () => {
    if (process.getuid?.() !== 0) return;
    dir = mkdtempSync(join(tmpdir(), 'nm-shutdown-'));
    copyFileSync(TOPOLOGY, join(dir, 'topology.yaml'));
    sim = await new SimFixture(uniqueSimName('sd'), dir).up();
    await sim.startEchoServer('demo/b1', [8080]);
    node2 = await sim.startAgent('node2', ['--capture', 'ebpf']);
    await node2.waitPod('demo/b1', 'enrolled');
  });

  after(async () => {
    for (const pid of [...frozen]) thaw(pid);
    await sim?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('node2 frozen: node1’s agent, SIGTERMed with a 2 s drain, exits within 3 s and frees its health port', async (t: TestContext) => {
    if (!requireRoot(t)) return;
    const healthPort = await freePort();
    const node1 = await sim!.startAgent('node1', ['--capture', 'ebpf', '--drain-ms', String(DRAIN_MS), '--health-port', String(healthPort)]);
    await node1.waitPod('demo/c1', 'enrolled');
    const held = await tunnelledConnection();
    t.after(() => { held.close(); thaw(node2!.child.pid!); });

    freeze(node2!.child.pid!);
    const stopAt = Date.now();
    node1.child.kill('SIGTERM');
    const { code, ms } = await timedExit(node1.child, stopAt, 30_000, 'node1’s agent');
    t.diagnostic(`node1's agent exited ${ms} ms after SIGTERM`);
    assert.equal(code, 0, `exit code; log:\n${node1.log.slice(-2000)}`);
    assert.ok(ms <= EXIT_WITHIN_MS, `node1’s agent exited ${ms} ms after SIGTERM (drain ${DRAIN_MS} ms); log:\n${node1.log.slice(-2000)}`);
    // It waited for the open connection (the drain), then cut it.
    assert.ok(ms >= DRAIN_MS - 100, `exited after ${ms} ms: before the drain's end, with a connection open`);
    assert.match(node1.log, /drain over: closing the connections still open/);
    assert.equal(await portIsFree(healthPort), true, `health port ${healthPort} is still held`);
  });

  test('a second SIGTERM cuts a long drain short', async (t: TestContext) => {
    if (!requireRoot(t)) return;
    const node1 = await sim!.startAgent('node1', ['--capture', 'ebpf', '--drain-ms', '120000']);
    await node1.waitPod('demo/c1', 'enrolled');
    const held = await tunnelledConnection();
    t.after(() => held.close());
    const stopAt = Date.now();
    node1.child.kill('SIGTERM');
    await waitFor('node1’s agent to log that it is stopping', () => node1.log.includes('stopping: capture stays installed'));
    // The held connection keeps the 120 s drain going: the agent is still there.
    assert.equal(node1.child.exitCode, null, 'the agent left its drain with a connection open');
    node1.child.kill('SIGTERM');
    const { code, ms } = await timedExit(node1.child, stopAt, 60_000, 'node1’s agent after the second SIGTERM');
    t.diagnostic(`node1's agent exited ${ms} ms after the first of two SIGTERMs`);
    assert.equal(code, 0, `exit code; log:\n${node1.log.slice(-2000)}`);
    assert.ok(ms < 60_000, `exited ${ms} ms after the first SIGTERM: the second one did not cut the 120 s drain`);
    assert.match(node1.log, /second signal: cutting the drain short/);
  });

  test('node2 frozen: a sidecar, SIGTERMed with a 2 s drain, exits within 3 s and frees its health port', async (t: TestContext) => {
    if (!requireRoot(t)) return;
    // node1's agent is gone (the tests above stopped it): d1 gets a sidecar by hand, as
    // injection would give it: the init step's rules, then `nodemesh sidecar`.
    const d1 = sim!.pod('demo/d1');
    const capture = await IptablesCapture.create({ backend: sim!.state.iptablesBackend });
    const socket = join(dir, 'd1-sidecar.sock');
    let log = '';
    let sidecar: ReturnType<typeof execInPod> | undefined;
    let held: HeldConnection | undefined;
    t.after(async () => {
      held?.close();
      thaw(node2!.child.pid!);
      if (sidecar && sidecar.exitCode === null && sidecar.signalCode === null) sidecar.kill('SIGKILL');
      await capture.release(d1.netnsPath);
    });
    const init = execInPod(sim!.state, 'demo/d1', [process.execPath, CLI, 'sidecar-init', '--pod-ip', d1.ips.join(','), '--iptables-backend', sim!.state.iptablesBackend], { stdio: 'ignore' });
    assert.equal(await waitExit(init), 0);
    sidecar = execInPod(sim!.state, 'demo/d1', [
      process.execPath, CLI, 'sidecar', '--source', dir, '--pod', 'demo/d1', '--admin-socket', socket,
      '--drain-ms', String(DRAIN_MS), '--health-port', '15021',
    ], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODEMESH_LOG_LEVEL: 'info' } });
    sidecar.stdout!.on('data', (d: Buffer) => { log += d.toString(); });
    sidecar.stderr!.on('data', (d: Buffer) => { log += d.toString(); });
    await waitFor(`the sidecar to serve d1 (log: ${log.slice(-1500)})`, async () => (await adminGet<SidecarPodRecord[]>(socket, '/debug/pods'))[0]?.status === 'enrolled', 20_000);
    const listening = () => sim!.runInPod('demo/d1', ['ss', '-Hltn', 'sport = :15021']);
    assert.notEqual(await listening(), '', 'the sidecar listens on its health port');

    // d1 -> its sidecar -> b1's address, captured there by node2's agent.
    held = sim!.hold('demo/d1', B1, 8080);
    await held.ready;
    assert.match(await held.roundTrip('through the sidecar'), /through the sidecar/);
    freeze(node2!.child.pid!);
    const stopAt = Date.now();
    sidecar.kill('SIGTERM');
    const { code, ms } = await timedExit(sidecar, stopAt, 30_000, 'the sidecar');
    t.diagnostic(`the sidecar exited ${ms} ms after SIGTERM`);
    assert.equal(code, 0, `exit code; log:\n${log.slice(-2000)}`);
    assert.ok(ms <= EXIT_WITHIN_MS, `the sidecar exited ${ms} ms after SIGTERM (drain ${DRAIN_MS} ms); log:\n${log.slice(-2000)}`);
    assert.ok(ms >= DRAIN_MS - 100, `exited after ${ms} ms: before the drain's end, with a connection open`);
    assert.equal(await listening(), '', 'the health port is still held');
  });
});
