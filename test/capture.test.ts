/**
 * The capture datapath end to end, on the simulator: two nodes, a1 and a2 on node1, b1 on
 * node2, a1 enrolled (ambient). Runs the same scenario for eBPF, eBPF with the sk_msg
 * accelerator, and iptables.
 */
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireRoot } from './helpers/privileges';
import { EXAMPLE_TOPOLOGY, SimFixture, uniqueSimName, waitFor, type AgentHandle, type ClientResult } from '../src/sim/harness';
import { netnsNames, pinnedPaths, iptablesNatRules, linkIdsOf } from './helpers/leftovers';

const A1 = '10.244.1.11';
const A2 = '10.244.1.12';
const B1 = '10.244.2.11';
const B1_V6 = 'fd00:244:2::11';
const SERVICE_B = '10.96.0.11';

function peerOf(result: ClientResult): string {
  const m = /^peer (?:::ffff:)?(\S+) /.exec(result.reply ?? '');
  assert.ok(m, `the server answered: ${JSON.stringify(result)}`);
  return m[1]!;
}

/** The topology with a1's annotation set to `mode` (written into the watched source dir). */
function writeTopology(dir: string, a1Mode: string): void {
  const text = readFileSync(EXAMPLE_TOPOLOGY, 'utf8').replace('nodemesh.dev/mode: ambient', `nodemesh.dev/mode: ${a1Mode}`);
  writeFileSync(join(dir, 'topology.yaml'), text);
}

const MODES: Array<{ name: string; args: string[]; backend: 'ebpf' | 'iptables' }> = [
  { name: 'ebpf', args: ['--capture', 'ebpf'], backend: 'ebpf' },
  { name: 'ebpf with sk_msg', args: ['--capture', 'ebpf', '--sk-msg'], backend: 'ebpf' },
  { name: 'iptables', args: ['--capture', 'iptables'], backend: 'iptables' },
];

describe('capture on the simulator', { concurrency: false, timeout: 600_000 }, () => {
  let sim: SimFixture | undefined;
  let dir: string;

  before(async () => {
    if (process.getuid?.() !== 0) return;
    dir = mkdtempSync(join(tmpdir(), 'nm-capture-'));
    copyFileSync(EXAMPLE_TOPOLOGY, join(dir, 'topology.yaml'));
    sim = await new SimFixture(uniqueSimName('cap'), dir).up();
    await sim.startEchoServer('demo/b1');
    await sim.startEchoServer('demo/a1');
  });

  after(async () => {
    await sim?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const mode of MODES) {
    test(`${mode.name}: enrolled a1 is captured, a2 is not, inbound goes through 15006, release restores direct`, { timeout: 120_000 }, async (t: TestContext) => {
      if (!requireRoot(t)) return;
      writeTopology(dir, 'ambient');
      const agent = await sim!.startAgent('node1', mode.args);
      try {
        await agent.waitPod('demo/a1', 'enrolled');
        const capture = await agent.capture();
        assert.equal(capture.backend, mode.backend);

        // a1 → b1 by pod IP: through the proxy, and b1 sees a1's own pod IP.
        const direct = await sim!.client('demo/a1', B1, 8080, 'to-b1');
        assert.equal(peerOf(direct), A1);
        assert.match(direct.reply!, /to-b1$/);
        // a1 → Service b: the agent resolves the ClusterIP to b1.
        const viaService = await sim!.client('demo/a1', SERVICE_B, 80, 'to-service');
        assert.equal(peerOf(viaService), A1);
        assert.match(viaService.reply!, /to-service$/);
        // IPv6 too.
        const v6 = await sim!.client('demo/a1', B1_V6, 8080, 'v6');
        assert.match(v6.reply!, /^peer fd00:244:1::11 /);

        const log = await agent.connections('demo/a1');
        const outbound = log.filter((r) => r.direction === 'outbound' && r.result === 'ok');
        assert.ok(outbound.some((r) => r.originalDestination === `${B1}:8080` && r.upstream === `${B1}:8080`), JSON.stringify(log));
        assert.ok(outbound.some((r) => r.originalDestination === `${SERVICE_B}:80` && r.upstream === `${B1}:8080` && r.resolution === 'service demo/b:80'), JSON.stringify(log));
        assert.ok(outbound.some((r) => r.originalDestination === `[${B1_V6}]:8080`), JSON.stringify(log));
        assert.ok(outbound.every((r) => r.bytesUp > 0 && r.bytesDown > 0));

        // a2 is not enrolled: direct, and the agent sees nothing of it.
        const before = (await agent.connections()).length;
        const fromA2 = await sim!.client('demo/a2', B1, 8080, 'a2');
        assert.equal(peerOf(fromA2), A2);
        assert.equal(fromA2.local, `${A2} ${fromA2.local!.split(' ')[1]}`);
        assert.equal((await agent.connections()).length, before, 'the agent saw a connection of a pod it does not capture');
        assert.equal((await agent.connections('demo/a2')).length, 0);

        // Plaintext inbound a2 → a1: through 15006, delivered to a1's app from 127.0.0.6.
        const inbound = await sim!.client('demo/a2', A1, 8080, 'inbound');
        assert.equal(peerOf(inbound), '127.0.0.6');
        const inLog = (await agent.connections('demo/a1')).filter((r) => r.direction === 'inbound');
        assert.ok(inLog.some((r) => r.originalDestination === `${A1}:8080` && r.source.startsWith(`${A2}:`) && r.result === 'ok'), JSON.stringify(inLog));

        // The metric counted them.
        const metrics = await agent.metrics();
        const m = /nodemesh_proxy_connections_total\{direction="outbound",namespace="demo",pod="a1",result="ok"\} (\d+)/.exec(metrics);
        assert.ok(m && Number(m[1]) >= 3, 'outbound connections counted');
        if (mode.backend === 'ebpf') {
          assert.ok(capture.counters.connect_redirected! >= 1);
          const after = (await agent.capture()).counters;
          assert.ok(after.getsockopt_answered! >= 3, JSON.stringify(after));
          assert.ok(after.lookup_steered! >= 1, JSON.stringify(after));
          if (mode.args.includes('--sk-msg')) {
            assert.ok(after.sockhash_inserted! >= 2, `app and proxy sockets paired: ${JSON.stringify(after)}`);
            assert.ok(after.msg_redirected! >= 1, `sk_msg moved bytes: ${JSON.stringify(after)}`);
          } else {
            assert.equal(after.msg_redirected, 0);
          }
        }

        // Release: the annotation goes off, capture stops at once.
        writeTopology(dir, 'off');
        await agent.waitPod('demo/a1', 'absent');
        const countBefore = (await agent.connections('demo/a1')).length;
        const released = await sim!.client('demo/a1', B1, 8080, 'released');
        assert.equal(peerOf(released), A1);
        assert.ok(released.local!.startsWith(`${A1} `), `direct connection from the pod IP, got ${released.local}`);
        const inboundReleased = await sim!.client('demo/a2', A1, 8080, 'in-released');
        assert.equal(peerOf(inboundReleased), A2, 'inbound goes straight to the app again');
        assert.equal((await agent.connections('demo/a1')).length, countBefore);
        if (mode.backend === 'iptables') {
          assert.doesNotMatch(await iptablesNatRules(sim!.pod('demo/a1').netnsPath), /NODEMESH/);
        }
      } finally {
        await agent.stop();
      }
    });
  }

  test('eBPF: excluded ports and CIDRs go direct, the rest stays captured', { timeout: 120_000 }, async (t) => {
    if (!requireRoot(t)) return;
    writeTopology(dir, 'ambient');
    const agent = await sim!.startAgent('node1', ['--capture', 'ebpf', '--exclude-outbound-ports', '8080', '--exclude-cidrs', 'fd00:244:2::/64', '--exclude-inbound-ports', '8080']);
    try {
      await agent.waitPod('demo/a1', 'enrolled');
      const byPort = await sim!.client('demo/a1', B1, 8080, 'excluded-port');
      assert.ok(byPort.local!.startsWith(`${A1} `), `port 8080 is excluded: direct, got ${JSON.stringify(byPort)}`);
      const byCidr = await sim!.client('demo/a1', SERVICE_B, 80, 'service');
      assert.ok(byCidr.local!.startsWith('127.0.0.1 '), `port 80 is not excluded: captured, got ${JSON.stringify(byCidr)}`);
      const v6 = await sim!.client('demo/a1', 'fd00:96::11', 80, 'v6-service');
      assert.ok(v6.local!.startsWith('::1 '), `the v6 ClusterIP is outside the excluded CIDR: captured, got ${JSON.stringify(v6)}`);
      const v6direct = await sim!.client('demo/a1', B1_V6, 8080, 'v6-direct');
      assert.match(v6direct.local!, /^fd00:244:1::11 /, 'fd00:244:2::/64 is excluded');
      const inbound = await sim!.client('demo/a2', A1, 8080, 'in-excluded');
      assert.equal(peerOf(inbound), A2, 'inbound port 8080 is excluded: the app sees a2 itself');
      const counters = (await agent.capture()).counters;
      assert.ok(counters.connect_excluded! >= 2, JSON.stringify(counters));
    } finally {
      writeTopology(dir, 'off');
      await agent.waitPod('demo/a1', 'absent');
      await agent.stop();
    }
  });

  test('eBPF: a restarted agent adopts the pinned state; while it is down pods work uncaptured; open connections survive', { timeout: 120_000 }, async (t) => {
    if (!requireRoot(t)) return;
    writeTopology(dir, 'ambient');
    let agent: AgentHandle = await sim!.startAgent('node1', ['--capture', 'ebpf']);
    await agent.waitPod('demo/a1', 'enrolled');
    const pinDir = `/sys/fs/bpf/nodemesh/${agent.instance}`;
    const linksBefore = await linkIdsOf(pinDir);
    assert.equal(Object.keys(linksBefore).length, 5, `4 cgroup links and a1's sk_lookup: ${JSON.stringify(linksBefore)}`);

    // A connection a2 holds open to a1 (direct) and one a1 holds to b1 (through the proxy
    // of the old agent) — the first must survive the restart untouched.
    const held = sim!.hold('demo/a2', B1, 8080);
    await held.ready;
    await agent.stop();

    // Down: capture fails open, a1 still reaches b1 and a2 still reaches a1, directly.
    const whileDown = await sim!.client('demo/a1', B1, 8080, 'down');
    assert.ok(whileDown.local!.startsWith(`${A1} `), `direct while the agent is down: ${JSON.stringify(whileDown)}`);
    const inboundDown = await sim!.client('demo/a2', A1, 8080, 'in-down');
    assert.equal(peerOf(inboundDown), A2);
    assert.deepEqual(await linkIdsOf(pinDir), linksBefore, 'links stay pinned while no agent runs');

    agent = await sim!.startAgent('node1', ['--capture', 'ebpf']);
    try {
      await agent.waitPod('demo/a1', 'enrolled');
      assert.match(agent.log, /adopting pinned capture programs/);
      assert.deepEqual(await linkIdsOf(pinDir), linksBefore, 'the new agent adopted the same links');
      const again = await sim!.client('demo/a1', B1, 8080, 'again');
      assert.ok(again.local!.startsWith('127.0.0.1 '), `captured again: ${JSON.stringify(again)}`);
      assert.ok((await agent.connections('demo/a1')).some((r) => r.direction === 'outbound' && r.result === 'ok'));
      // The connection held across the restart still works.
      assert.match(await held.roundTrip('still-there'), /still-there/);
    } finally {
      held.close();
      writeTopology(dir, 'off');
      await agent.waitPod('demo/a1', 'absent');
      await agent.stop();
    }
  });

  test('a pod whose namespace vanished is reported failed with a clear error; the others are captured', { timeout: 120_000 }, async (t) => {
    if (!requireRoot(t)) return;
    writeTopology(dir, 'ambient');
    // a2 opts in too, but its namespace disappears before the agent gets to it.
    const text = readFileSync(join(dir, 'topology.yaml'), 'utf8').replace(/(name: a2\n\s+namespace: demo\n\s+labels: \{ app: a \})/, '$1\n  annotations: { nodemesh.dev/mode: ambient }');
    const vanishDir = mkdtempSync(join(tmpdir(), 'nm-vanish-'));
    writeFileSync(join(vanishDir, 'topology.yaml'), text);
    const a2 = sim!.pod('demo/a2');
    // Hide a2's namespace file: the pod's processes keep running, its path is gone.
    const { run } = await import('../src/util/exec');
    await run('umount', [a2.netnsPath]);
    rmSync(a2.netnsPath, { force: true });
    const agent = await sim!.startAgent('node1', ['--capture', 'ebpf'], vanishDir);
    try {
      const failed = await agent.waitPod('demo/a2', 'failed');
      assert.equal(failed!.code, 'ERR_NM_POD_NETNS_GONE');
      assert.match(failed!.reason!, /does not exist.*deleted/);
      await agent.waitPod('demo/a1', 'enrolled');
      const ok = await sim!.client('demo/a1', B1, 8080, 'still-fine');
      assert.equal(peerOf(ok), A1);
    } finally {
      writeFileSync(join(vanishDir, 'topology.yaml'), readFileSync(EXAMPLE_TOPOLOGY, 'utf8').replace('nodemesh.dev/mode: ambient', 'nodemesh.dev/mode: off'));
      await agent.waitPod('demo/a1', 'absent');
      await agent.stop();
      rmSync(vanishDir, { recursive: true, force: true });
    }
  });

  test('a missing kernel feature falls back to iptables and says why', { timeout: 120_000 }, async (t) => {
    if (!requireRoot(t)) return;
    writeTopology(dir, 'ambient');
    // A capture cgroup that is not on cgroup v2 fails the eBPF probe for real.
    const notCgroup = mkdtempSync(join(tmpdir(), 'nm-not-cgroup-'));
    const agent = await sim!.startAgent('node1', ['--capture', 'auto', '--cgroup', notCgroup]);
    try {
      const capture = await agent.capture();
      assert.equal(capture.backend, 'iptables');
      assert.match(capture.reason, /falling back to iptables because cgroup v2 at the capture cgroup: .* is not on cgroup v2/);
      await agent.waitPod('demo/a1', 'enrolled');
      const r = await sim!.client('demo/a1', B1, 8080, 'fallback');
      assert.equal(peerOf(r), A1);
      assert.ok((await agent.connections('demo/a1')).some((c) => c.direction === 'outbound' && c.originalDestination === `${B1}:8080`));
    } finally {
      writeTopology(dir, 'off');
      await agent.waitPod('demo/a1', 'absent');
      await agent.stop();
      rmSync(notCgroup, { recursive: true, force: true });
    }
  });

  test('asking for eBPF where it cannot work is a clear error, not a silent fallback', { timeout: 120_000 }, async (t) => {
    if (!requireRoot(t)) return;
    const notCgroup = mkdtempSync(join(tmpdir(), 'nm-not-cgroup-'));
    try {
      await assert.rejects(sim!.startAgent('node1', ['--capture', 'ebpf', '--cgroup', notCgroup]), /eBPF requested but cgroup v2 at the capture cgroup/);
    } finally {
      rmSync(notCgroup, { recursive: true, force: true });
    }
  });

  test('sim down leaves no namespace, cgroup, pin, attached program or rule behind', { timeout: 120_000 }, async (t) => {
    if (!requireRoot(t)) return;
    writeTopology(dir, 'ambient');
    const agent = await sim!.startAgent('node1', ['--capture', 'ebpf', '--sk-msg']);
    await agent.waitPod('demo/a1', 'enrolled');
    const name = sim!.name;
    const cgroupRoot = sim!.state.cgroupRoot;
    await sim!.close();
    sim = undefined;
    assert.deepEqual(netnsNames(`nmsim-${name}-`), []);
    assert.deepEqual(pinnedPaths(`sim-${name}-`), []);
    const { existsSync } = await import('node:fs');
    assert.equal(existsSync(cgroupRoot), false, `${cgroupRoot} removed`);
    assert.equal(existsSync(`/run/nodemesh/sim-${name}-node1`), false);
    await waitFor('the agent to exit', () => agent.child.exitCode !== null || agent.child.signalCode !== null);
  });
});
