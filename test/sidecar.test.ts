/**
 * Sidecar mode on the simulator (issue 5, item 1): c1 (annotated nodemesh.dev/mode:
 * sidecar) gets its own proxy process from `sim up`, inside its namespace and cgroup, with
 * the init step's iptables rules; s1 (node1) and s2 (node2) are plain servers behind
 * Service `server`, and an HTTPRoute sends `x-canary: always` to Service `server-v2` (s2).
 * The node agent runs on node1 too: it captures a1 (ambient) and never c1.
 */
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { adminGet } from '../src/admin/admin-client';
import { requireRoot } from './helpers/privileges';
import { iptablesNatRules, netnsNames } from './helpers/leftovers';
import { CLI, SimFixture, uniqueSimName, waitFor, type AgentHandle } from '../src/sim/harness';
import { execInPod, waitExit } from '../src/sim/exec';
import { IptablesCapture } from '../src/capture/iptables/iptables-capture';
import { simUp } from '../src/sim/up';
import { netnsPrefix } from '../src/sim/names';
import type { SidecarPodRecord } from '../src/admin/debug-replies';
import type { HttpSteadyResult } from '../src/sim/apps/steady-client';

const ROOT = resolve(__dirname, '..', '..');
const TOPOLOGY = join(ROOT, 'test', 'fixtures', 'sidecar', 'topology.yaml');
const APP_ARGS = ['--h2c', 'off', '--grpc', 'off', '--ws', 'off', '--tls', 'off', '--tcp', 'off'];

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The sum of the `name` series (default istio_requests_total) whose labels include all of `labels`. */
function requests(metrics: string, labels: Record<string, string>, name = 'istio_requests_total'): number {
  let total = 0;
  for (const line of metrics.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

describe('sidecar mode on the simulator', { concurrency: false, timeout: 300_000 }, () => {
  let sim: SimFixture | undefined;
  let agent: AgentHandle | undefined;
  let dir: string | undefined;
  let sidecarPid: number | undefined;

  before(async () => {
    if (process.getuid?.() !== 0) return;
    dir = mkdtempSync(join(tmpdir(), 'nm-sidecar-'));
    chmodSync(dir, 0o755); // readable by the uid-1337 sidecar below
    copyFileSync(TOPOLOGY, join(dir, 'topology.yaml'));
    sim = await new SimFixture(uniqueSimName('sc'), dir).up();
    await sim.startL7App('demo/s1', ['--name', 's1', ...APP_ARGS]);
    await sim.startL7App('demo/s2', ['--name', 's2', ...APP_ARGS]);
    agent = await sim.startAgent('node1');
  });

  after(async () => {
    await sim?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('sim up starts the sidecar inside c1 (namespace, cgroup) after the init step', async (t: TestContext) => {
    if (!requireRoot(t)) return;
    const c1 = sim!.pod('demo/c1');
    assert.equal(c1.mode, 'sidecar');
    assert.equal(c1.sidecarAdminSocket, `/run/nodemesh-sim/${sim!.name}/sidecars/demo_c1.sock`);
    assert.ok(c1.sidecarPid && alive(c1.sidecarPid), 'the sidecar runs');
    sidecarPid = c1.sidecarPid;
    assert.ok(sim!.state.created.pids.includes(sidecarPid!), 'its pid is in the state');
    // In the pod's cgroup and network namespace.
    assert.ok(readFileSync(`${c1.cgroup}/cgroup.procs`, 'utf8').split('\n').includes(String(sidecarPid)));
    assert.equal(statSync(`/proc/${sidecarPid}/ns/net`).ino, statSync(c1.netnsPath).ino, 'the sidecar lives in c1’s network namespace');
    // The init step's rules, in c1 only.
    const rules = await iptablesNatRules(c1.netnsPath);
    assert.match(rules, /-A OUTPUT -p tcp -m comment --comment nodemesh -j NODEMESH_OUTPUT/);
    assert.match(rules, /REDIRECT --to-ports 15001/);
    assert.doesNotMatch(await iptablesNatRules(sim!.pod('demo/s1').netnsPath), /NODEMESH/);
    // Serving, with capture verified by the self-test.
    const [record] = await adminGet<SidecarPodRecord[]>(c1.sidecarAdminSocket!, '/debug/pods');
    assert.equal(record?.status, 'enrolled', JSON.stringify(record));
    assert.deepEqual(record?.ips, c1.ips);
    // Plain servers and the ambient pod have no sidecar.
    for (const key of ['demo/s1', 'demo/s2', 'demo/a1']) assert.equal(sim!.pod(key).sidecarAdminSocket, undefined, key);
  });

  test('the node agent captures a1 (ambient) and leaves c1 to its sidecar', async (t: TestContext) => {
    if (!requireRoot(t)) return;
    await agent!.waitPod('demo/a1', 'enrolled');
    const pods = await agent!.pods();
    assert.deepEqual(pods.map((p) => p.key), ['demo/a1'], JSON.stringify(pods));
  });

  test('c1 -> Service -> s1 and s2 through c1’s own sidecar, counted with reporter source', async (t: TestContext) => {
    if (!requireRoot(t)) return;
    const socket = sim!.pod('demo/c1').sidecarAdminSocket!;
    const before = requests(await adminGet<string>(socket, '/metrics'), { reporter: 'source', source_workload: 'c1', destination_service_name: 'server' });
    const r = await sim!.l7Client('demo/c1', ['http', 'http://server.demo/', '--count', '20']);
    assert.deepEqual(r.statuses, { 200: 20 }, JSON.stringify(r));
    assert.ok(r.servedBy.s1 > 0 && r.servedBy.s2 > 0, `both backends, same node and across nodes: ${JSON.stringify(r.servedBy)}`);
    const metrics = await adminGet<string>(socket, '/metrics');
    assert.equal(requests(metrics, { reporter: 'source', source_workload: 'c1', destination_service_name: 'server', response_code: '200' }) - before, 20, metrics);
    assert.equal(requests(metrics, { reporter: 'source', destination_workload: 's1' }) + requests(metrics, { reporter: 'source', destination_workload: 's2' }) >= 20, true);
    // The sidecar, not the node agent, handled c1's requests.
    assert.equal(requests(await agent!.metrics(), { source_workload: 'c1' }), 0);
    // IPv6 goes through the sidecar too (ip6tables rules from the same init step).
    const v6 = await sim!.l7Client('demo/c1', ['http', 'http://[fd00:96::31]/']);
    assert.equal(v6.status, 200, JSON.stringify(v6));
    // What the server saw: c1's own address (the sidecar dials from inside c1, no SNAT).
    const one = await sim!.l7Client('demo/c1', ['http', 'http://server-v2.demo/']);
    assert.equal(one.servedBy, 's2', JSON.stringify(one));
    assert.ok(sim!.pod('demo/c1').ips.includes(String(one.json?.remoteAddress).replace(/^::ffff:/, '')), JSON.stringify(one.json));
  });

  test('an HTTPRoute header match routes to s2: the same routing code as the node proxy', async (t: TestContext) => {
    if (!requireRoot(t)) return;
    const r = await sim!.l7Client('demo/c1', ['http', 'http://server.demo/', '--count', '10', '--header', 'x-canary:always']);
    assert.deepEqual(r.statuses, { 200: 10 }, JSON.stringify(r));
    assert.deepEqual(r.servedBy, { s2: 10 });
    const metrics = await adminGet<string>(sim!.pod('demo/c1').sidecarAdminSocket!, '/metrics');
    assert.ok(requests(metrics, { reporter: 'source', source_workload: 'c1', destination_service_name: 'server-v2', destination_workload: 's2' }) >= 10, metrics);
  });

  test('as injected on a cluster: uid 1337 without capabilities, loops avoided by the init step’s uid rule', async (t: TestContext) => {
    if (!requireRoot(t)) return;
    // s1 gets, by hand, what `nodemesh inject` gives a pod: the init step with
    // --exclude-uid 1337, then the sidecar as uid 1337 with every capability dropped (no
    // setns, no SO_MARK: it falls back to plain sockets).
    const s1 = sim!.pod('demo/s1');
    const capture = await IptablesCapture.create({ backend: sim!.state.iptablesBackend });
    const sockDir = mkdtempSync(join(tmpdir(), 'nm-sidecar-uid-'));
    chownSync(sockDir, 1337, 1337);
    const socket = join(sockDir, 'admin.sock');
    let log = '';
    let child: ReturnType<typeof execInPod> | undefined;
    t.after(async () => {
      if (child && child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await Promise.race([waitExit(child), new Promise((r) => setTimeout(r, 8000))]);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
      await capture.release(s1.netnsPath);
      rmSync(sockDir, { recursive: true, force: true });
    });
    const init = execInPod(sim!.state, 'demo/s1', [process.execPath, CLI, 'sidecar-init', '--pod-ip', s1.ips.join(','), '--exclude-uid', '1337', '--iptables-backend', sim!.state.iptablesBackend], { stdio: 'ignore' });
    assert.equal(await waitExit(init), 0);
    assert.match(await iptablesNatRules(s1.netnsPath), /-m owner --uid-owner 1337 -m comment --comment nodemesh -j RETURN/);
    // The checkout may sit below a directory only root may enter (`mktemp -d` makes 0700
    // ones), where uid 1337 could not load the CLI: it is bind-mounted, in a mount
    // namespace of the sidecar's own (gone with it), at a path anyone can traverse.
    const view = mkdtempSync(join(tmpdir(), 'nm-sidecar-root-'));
    chmodSync(view, 0o755);
    t.after(() => rmSync(view, { recursive: true, force: true }));
    child = execInPod(sim!.state, 'demo/s1', [
      'unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', 'mount --bind "$1" "$2" && shift 2 && exec "$@"', 'sh', ROOT, view,
      'setpriv', '--reuid=1337', '--regid=1337', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--',
      process.execPath, join(view, relative(ROOT, CLI)), 'sidecar', '--source', dir!, '--pod', 'demo/s1', '--admin-socket', socket, '--drain-ms', '500',
    ], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODEMESH_LOG_LEVEL: 'info' } });
    child.stdout!.on('data', (d: Buffer) => { log += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { log += d.toString(); });
    await waitFor(`the uid-1337 sidecar to serve s1 (log: ${log.slice(-1500)})`, async () => (await adminGet<SidecarPodRecord[]>(socket, '/debug/pods'))[0]?.status === 'enrolled', 20_000);
    assert.match(log, /"loopAvoidance":"uid"/);
    assert.match((await adminGet<{ reason: string }>(socket, '/debug/capture')).reason, /proxy uid/);

    // Inbound: c1 (through its own sidecar) -> s1's pod IP -> s1's sidecar on 15006 -> the app from 127.0.0.6.
    const inbound = await sim!.l7Client('demo/c1', ['http', 'http://10.244.1.31:8080/']);
    assert.equal(inbound.status, 200, JSON.stringify(inbound));
    assert.equal(inbound.servedBy, 's1');
    assert.equal(inbound.json?.remoteAddress.replace(/^::ffff:/, ''), '127.0.0.6', 'delivered by s1’s sidecar');
    // Outbound: s1's app -> its sidecar -> s2. The sidecar's own connection (uid 1337, no
    // mark) goes out uncaptured; without the uid rule it would loop back into the sidecar.
    const outbound = await sim!.l7Client('demo/s1', ['http', 'http://server-v2.demo/', '--count', '3']);
    assert.deepEqual(outbound.statuses, { 200: 3 }, `${JSON.stringify(outbound)}\n${log.slice(-1500)}`);
    assert.deepEqual(outbound.servedBy, { s2: 3 });
    const metrics = await adminGet<string>(socket, '/metrics');
    // The inbound leg is parsed as HTTP (it sniffs as HTTP), so it counts as a request:
    // plaintext, so no principal and connection_security_policy "none".
    assert.ok(requests(metrics, { reporter: 'destination', source_workload: 'c1', destination_workload: 's1', source_principal: 'unknown', connection_security_policy: 'none', response_code: '200' }) >= 1, metrics);
    assert.equal(requests(metrics, { reporter: 'source', source_workload: 's1', destination_service_name: 'server-v2', response_code: '200' }), 3);

    // SIGTERM: it drains and exits 0.
    child.kill('SIGTERM');
    assert.equal(await waitExit(child), 0, log.slice(-1500));
    assert.match(log, /stopping: draining open connections/);
  });

  test('a sidecar restarted in place hands its connections over: keep-alive requests carry on, the old process leaves', async (t: TestContext) => {
    if (!requireRoot(t)) return;
    // A new source is what makes `up` restart the sidecar (its flags change); then back.
    const other = mkdtempSync(join(tmpdir(), 'nm-sidecar-src-'));
    t.after(() => rmSync(other, { recursive: true, force: true }));
    chmodSync(other, 0o755);
    copyFileSync(join(dir!, 'topology.yaml'), join(other, 'topology.yaml'));
    const load = sim!.steadyClient<HttpSteadyResult>('demo/c1', ['http', 'http://server.demo/', '--rate', '100', '--connections', '2', '--max-seconds', '120']);
    await load.running();
    await load.advance(50);
    for (const source of [other, dir!]) {
      const before = sim!.pod('demo/c1').sidecarPid!;
      sim!.state = await simUp({ name: sim!.name, source });
      const after = sim!.pod('demo/c1').sidecarPid!;
      assert.notEqual(after, before, 'a new sidecar process');
      // It left by itself (sim up saw it leave its cgroup); this process reaps it on its next turns.
      await waitFor(`the old sidecar (pid ${before}) to be gone once it held nothing`, () => !alive(before), 10_000);
      const handover = await adminGet<{ state: string; role?: string; peerPid?: number; connections: number }>(sim!.pod('demo/c1').sidecarAdminSocket!, '/debug/handover');
      assert.deepEqual([handover.state, handover.role, handover.peerPid], ['done', 'receiver', before], JSON.stringify(handover));
      await load.advance(50); // requests flow through the new sidecar
    }
    sidecarPid = sim!.pod('demo/c1').sidecarPid;
    const http = await load.stop();
    assert.equal(http.failed, 0, `failed requests ${JSON.stringify(http.errors)}`);
    assert.equal(http.resets, 0);
    assert.deepEqual(http.closedByPeer, {}, 'no keep-alive connection closed under the client');
    assert.equal(http.connectionsOpened, 2, 'the same two connections throughout: handed over, not re-opened');
  });

  test('up again keeps the running sidecar; a pod leaving sidecar mode loses its proxy and rules', async (t: TestContext) => {
    if (!requireRoot(t)) return;
    const again = await simUp({ name: sim!.name, source: dir! });
    const c1 = again.pods.find((p) => p.key === 'demo/c1')!;
    assert.equal(c1.sidecarPid, sidecarPid, 'the same process');
    assert.ok(alive(sidecarPid!));

    writeFileSync(join(dir!, 'topology.yaml'), readFileSync(TOPOLOGY, 'utf8').replace('\n    nodemesh.dev/mode: sidecar\n', '\n    nodemesh.dev/mode: "off"\n'));
    const off = await simUp({ name: sim!.name, source: dir! });
    const plain = off.pods.find((p) => p.key === 'demo/c1')!;
    assert.equal(plain.mode, 'off');
    assert.equal(plain.sidecarPid, undefined);
    assert.equal(plain.sidecarAdminSocket, undefined);
    assert.ok(!off.created.pids.includes(sidecarPid!));
    await waitFor('the sidecar to exit', () => !alive(sidecarPid!));
    assert.doesNotMatch(await iptablesNatRules(plain.netnsPath), /NODEMESH/, 'the init step’s rules are gone');
    // c1 now talks directly (kube-proxy's DNAT on the node).
    const direct = await sim!.l7Client('demo/c1', ['http', 'http://server.demo/']);
    assert.equal(direct.status, 200, JSON.stringify(direct));

    // And back: a new sidecar.
    writeFileSync(join(dir!, 'topology.yaml'), readFileSync(TOPOLOGY, 'utf8'));
    sim!.state = await simUp({ name: sim!.name, source: dir! });
    const back = sim!.pod('demo/c1');
    assert.ok(back.sidecarPid && back.sidecarPid !== sidecarPid && alive(back.sidecarPid));
    sidecarPid = back.sidecarPid;
    const r = await sim!.l7Client('demo/c1', ['http', 'http://server.demo/', '--header', 'x-canary:always']);
    assert.equal(r.servedBy, 's2', JSON.stringify(r));
  });

  test('sim down leaves nothing: no namespace, no sidecar process, no admin socket', async (t: TestContext) => {
    if (!requireRoot(t)) return;
    const name = sim!.name;
    const socket = sim!.pod('demo/c1').sidecarAdminSocket!;
    assert.ok(existsSync(socket));
    await sim!.close();
    assert.deepEqual(netnsNames(netnsPrefix(name)), []);
    await waitFor('the sidecar to be gone', () => !alive(sidecarPid!), 5000);
    assert.ok(!existsSync(socket), 'admin socket removed');
    assert.ok(!existsSync(`/run/nodemesh-sim/${name}`), 'state directory removed');
    sim = undefined;
  });
});
