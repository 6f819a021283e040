/**
 * Sidecar mode on the simulator (issue 5, item 1): c1 (annotated nodemesh.dev/mode:
 * sidecar) gets its own proxy process from `sim up`, inside its namespace and cgroup, with
 * the init step's iptables rules; s1 (node1) and s2 (node2) are plain servers behind
 * Service `server`, and an HTTPRoute sends `x-canary: always` to Service `server-v2` (s2).
 * The node agent runs on node1 too: it captures a1 (ambient) and never c1.
 */
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { adminGet } from '../src/admin/admin-client';
import { requireRoot } from './helpers/privileges';
import { iptablesNatRules, netnsNames } from './helpers/leftovers';
import { SimFixture, uniqueSimName, waitFor, type AgentHandle } from '../src/sim/harness';
import { simUp } from '../src/sim/up';
import { netnsPrefix } from '../src/sim/names';
import type { SidecarPodRecord } from '../src/sidecar/sidecar';

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

/** The value of one istio_requests_total series whose labels include all of `labels`. */
function requests(metrics: string, labels: Record<string, string>): number {
  let total = 0;
  for (const line of metrics.split('\n')) {
    if (!line.startsWith('istio_requests_total{')) continue;
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
