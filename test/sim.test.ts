import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireRoot } from './helpers/privileges';
import { run, runStatus } from '../src/util/exec';
import { checkSealed, execInPod, requireCgroup2Mount, loadSimState, simDown, simStatus, simUp, type SimState } from '../src/sim';
import { netnsPrefix } from '../src/sim/names';

/**
 * The simulator end to end, as root: build the example topology, send traffic between
 * its pods (only inside the simulation's namespaces), reconcile a change, tear down, and
 * tear down after a crash. Every sim here has a unique name and is removed in t.after.
 */

const EXAMPLE_DIR = join(__dirname, '..', '..', 'deploy', 'examples', 'sim');
const tag = process.pid.toString(36).slice(-6);

/** Echo server: answers "<client address>|<bytes received>". */
const ECHO_SERVER = `
const net = require('net');
const server = net.createServer((c) => {
  c.on('data', (d) => { c.end(c.remoteAddress.replace(/^::ffff:/, '') + '|' + d); });
  c.on('error', () => {});
});
server.listen(Number(process.argv[1]), '::', () => console.log('listening'));
`;

/** Client: connects, sends argv[3], prints the answer; exit 2 on error (code printed), 3 on timeout. */
const ECHO_CLIENT = `
const net = require('net');
const [host, port, text] = process.argv.slice(1);
const c = net.connect({ host, port: Number(port), timeout: 3000 }, () => c.write(text));
let out = '';
c.on('data', (d) => { out += d; });
c.on('end', () => { process.stdout.write(out); process.exit(0); });
c.on('timeout', () => { process.stdout.write('TIMEOUT'); process.exit(3); });
c.on('error', (e) => { process.stdout.write('ERROR ' + e.code); process.exit(2); });
`;

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

function collect(child: ChildProcess, timeoutMs: number): Promise<Finished> {
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d) => (stdout += String(d)));
    child.stderr?.on('data', (d) => (stderr += String(d)));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function clientInPod(sim: SimState, pod: string, host: string, port: number, text: string): Promise<Finished> {
  return collect(execInPod(sim, pod, [process.execPath, '-e', ECHO_CLIENT, host, String(port), text], { stdio: ['ignore', 'pipe', 'pipe'] }), 10_000);
}

/** Starts an echo server in a pod and waits until it listens. */
async function serverInPod(sim: SimState, pod: string, port: number, started: ChildProcess[]): Promise<ChildProcess> {
  const child = execInPod(sim, pod, [process.execPath, '-e', ECHO_SERVER, String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(child);
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`server in ${pod} did not start: ${out}`)), 10_000);
    child.stdout!.on('data', (d) => {
      out += String(d);
      if (out.includes('listening')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr!.on('data', (d) => (out += String(d)));
    child.on('exit', (code) => reject(new Error(`server in ${pod} exited (${code}): ${out}`)));
  });
  return child;
}

function stopAll(children: ChildProcess[]): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) child.kill('SIGTERM');
}

async function simNetns(name: string): Promise<string[]> {
  const { stdout } = await run('ip', ['netns', 'list']);
  return stdout
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => n.startsWith(netnsPrefix(name)));
}

/** Nothing of the sim is left: namespaces, /etc/netns dirs, cgroups, state. */
async function assertGone(name: string): Promise<void> {
  assert.deepEqual(await simNetns(name), [], 'no namespace with the prefix');
  const etc = existsSync('/etc/netns') ? readdirSync('/etc/netns').filter((e) => e.startsWith(netnsPrefix(name))) : [];
  assert.deepEqual(etc, [], 'no /etc/netns dir');
  assert.ok(!existsSync(join(requireCgroup2Mount(), 'nodemesh-sim', name)), 'no cgroup dir');
  assert.ok(!existsSync(`/run/nodemesh-sim/${name}`), 'no state dir');
}

/** `ip -j` output, parsed. */
async function ipJson(args: string[]): Promise<Array<Record<string, unknown>>> {
  const { stdout } = await run('ip', ['-j', ...args]);
  return stdout.trim() === '' ? [] : (JSON.parse(stdout) as Array<Record<string, unknown>>);
}

/** What `up` leaves in a node: for comparing two runs. */
async function nodeFingerprint(state: SimState): Promise<string> {
  const parts: string[] = [];
  for (const node of state.nodes) {
    for (const family of [4, 6] as const) {
      const save = await run('nsenter', [`--net=${node.netnsPath}`, '--', `${family === 6 ? 'ip6tables' : 'iptables'}-${state.iptablesBackend}-save`, '-t', 'nat']);
      parts.push(save.stdout.split('\n').filter((l) => !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]/, '')).join('\n'));
      parts.push(JSON.stringify(await ipJson(['-n', node.netns, `-${family}`, 'route', 'show'])));
    }
    parts.push(JSON.stringify((await ipJson(['-n', node.netns, 'link', 'show'])).map((l) => l.ifname)));
  }
  return parts.join('\n');
}

function addCleanup(t: TestContext, name: string, children: ChildProcess[] = []): void {
  t.after(async () => {
    stopAll(children);
    await simDown(name);
  });
}

test('simulator: the example topology end to end', { timeout: 180_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const name = `t${tag}`;
  const children: ChildProcess[] = [];
  const workDir = mkdtempSync(join(tmpdir(), 'nm-sim-test-'));
  t.after(() => rmSync(workDir, { recursive: true, force: true }));
  addCleanup(t, name, children);
  copyFileSync(join(EXAMPLE_DIR, 'topology.yaml'), join(workDir, 'topology.yaml'));

  const state = await simUp({ name, source: workDir });

  await t.test('the state names every namespace, cgroup and address', async () => {
    assert.equal(state.phase, 'ready');
    assert.deepEqual(state.rejected, []);
    assert.deepEqual(state.nodes.map((n) => `${n.name} ${n.fabricIP} ${n.podCIDR} ${n.gateway}`), ['node1 10.255.0.1 10.244.1.0/24 10.244.1.1', 'node2 10.255.0.2 10.244.2.0/24 10.244.2.1']);
    assert.deepEqual(state.pods.map((p) => `${p.key} ${p.node} ${p.ips.join(',')} ${p.mode}`), [
      'demo/a1 node1 10.244.1.11,fd00:244:1::11 ambient',
      'demo/a2 node1 10.244.1.12,fd00:244:1::12 off',
      'demo/b1 node2 10.244.2.11,fd00:244:2::11 off',
    ]);
    const cg2 = requireCgroup2Mount();
    for (const node of state.nodes) {
      assert.equal(node.agentCgroup, `${cg2}/nodemesh-sim/${name}/${node.name}/agent`);
      assert.ok(existsSync(`${node.agentCgroup}/cgroup.procs`), node.agentCgroup);
      assert.ok(existsSync(node.netnsPath));
    }
    for (const pod of state.pods) {
      assert.equal(pod.cgroup, `${cg2}/nodemesh-sim/${name}/${pod.node}/pods/${pod.namespace}_${pod.name}-pod${pod.uid}`);
      assert.equal(pod.netnsPath, `/run/netns/nmsim-${name}-pod-${pod.namespace}_${pod.name}`);
      assert.ok(existsSync(`${pod.cgroup}/cgroup.procs`));
      assert.ok(readFileSync(pod.hostsFile, 'utf8').includes('b.demo.svc.cluster.local'));
    }
    assert.deepEqual(loadSimState(name), state);
    const status = await simStatus(name);
    assert.ok(status.healthy, JSON.stringify(status, null, 2));
    assert.deepEqual(status.strayNetns, []);
  });

  await t.test('sealed: pods route only to their node; nodes and fabric have no default route', async () => {
    assert.deepEqual(await checkSealed(state), []);
    for (const pod of state.pods) {
      const node = state.nodes.find((n) => n.name === pod.node)!;
      const [route] = await ipJson(['-n', pod.netns, 'route', 'get', '192.0.2.1']);
      assert.equal(route!.gateway, node.gateway, `${pod.key} reaches 192.0.2.1 only via its node`);
    }
    for (const netns of [state.fabric.netns, ...state.nodes.map((n) => n.netns)]) {
      for (const family of ['-4', '-6']) assert.deepEqual(await ipJson(['-n', netns, family, 'route', 'show', 'default']), [], `${netns} ${family}`);
    }
    const probe = await runStatus('ip', ['-n', state.nodes[0]!.netns, 'route', 'get', '192.0.2.1']);
    assert.notEqual(probe.status, 0, 'a node cannot route to the outside');
    assert.match(probe.stderr, /unreachable/i);
    assert.deepEqual((await ipJson(['-n', state.fabric.netns, '-4', 'addr', 'show'])).filter((a) => a.ifname !== 'lo').flatMap((a) => a.addr_info as unknown[]), []);
  });

  const b1 = await serverInPod(state, 'demo/b1', 8080, children);
  await serverInPod(state, 'demo/a1', 8080, children);

  await t.test('pod to pod, other node and same node, by pod IP; the server sees the client pod IP', async () => {
    assert.deepEqual(await clientInPod(state, 'demo/a2', '10.244.2.11', 8080, 'cross'), { code: 0, stdout: '10.244.1.12|cross', stderr: '' });
    assert.deepEqual(await clientInPod(state, 'demo/a2', '10.244.1.11', 8080, 'same'), { code: 0, stdout: '10.244.1.12|same', stderr: '' });
    // The server runs in b1's cgroup: exec joined it before the program started.
    const procs = readFileSync(`${state.pods.find((p) => p.key === 'demo/b1')!.cgroup}/cgroup.procs`, 'utf8').split('\n');
    assert.ok(procs.includes(String(b1.pid)), `pid ${b1.pid} in ${procs.join(' ')}`);
  });

  await t.test('IPv6 pod to pod', async () => {
    assert.deepEqual(await clientInPod(state, 'demo/a2', 'fd00:244:2::11', 8080, 'six'), { code: 0, stdout: 'fd00:244:1::12|six', stderr: '' });
    assert.deepEqual(await clientInPod(state, 'demo/a2', 'fd00:244:1::11', 8080, 'six-same'), { code: 0, stdout: 'fd00:244:1::12|six-same', stderr: '' });
  });

  await t.test('Services through the kube-proxy stand-in, by cluster IP and by name', async () => {
    for (const host of ['10.96.0.11', 'b.demo.svc.cluster.local', 'b.demo', 'b', 'fd00:96::11']) {
      const got = await clientInPod(state, 'demo/a2', host, 80, host);
      assert.equal(got.code, 0, `${host}: ${got.stdout} ${got.stderr}`);
      assert.match(got.stdout, new RegExp(`^(10\\.244\\.1\\.12|fd00:244:1::12)\\|${host.replace(/\./g, '\\.')}$`));
    }
    // Service a has a1 (serving) and a2 (not listening): from b1, some attempts land on a1,
    // which must see b1's own address (no SNAT across nodes).
    let reached = 0;
    for (let i = 0; i < 30 && reached === 0; i++) {
      const got = await clientInPod(state, 'demo/b1', '10.96.0.10', 80, 'x');
      if (got.code === 0) {
        assert.equal(got.stdout, '10.244.2.11|x');
        reached++;
      } else assert.equal(got.stdout, 'ERROR ECONNREFUSED');
    }
    assert.equal(reached, 1, 'a1 answered through Service a');
  });

  await t.test('hairpin: a pod reaching itself through its Service', async () => {
    let reached = 0;
    for (let i = 0; i < 30 && reached === 0; i++) {
      const got = await clientInPod(state, 'demo/a1', '10.96.0.10', 80, 'me');
      if (got.code === 0) {
        assert.equal(got.stdout, '10.244.1.1|me', 'masqueraded to the node bridge, as kube-proxy does');
        reached++;
      }
    }
    assert.equal(reached, 1);
  });

  await t.test('up again with the same objects changes nothing', async () => {
    const before = await nodeFingerprint(state);
    const netnsBefore = (await simNetns(name)).sort();
    const again = await simUp({ name, source: workDir });
    assert.deepEqual(again.nodes, state.nodes);
    assert.deepEqual(again.pods, state.pods);
    assert.deepEqual(again.services, state.services);
    assert.deepEqual(again.created, state.created);
    assert.equal(await nodeFingerprint(again), before);
    assert.deepEqual((await simNetns(name)).sort(), netnsBefore);
    // Running servers survive a re-up.
    assert.deepEqual(await clientInPod(again, 'demo/a2', '10.244.2.11', 8080, 'still'), { code: 0, stdout: '10.244.1.12|still', stderr: '' });
  });

  await t.test('up with changed objects reconciles pods and Service rules', async () => {
    const text = readFileSync(join(workDir, 'topology.yaml'), 'utf8');
    const docs = text.split('\n---\n').filter((d) => !/name: a2\n/.test(d) && !/kind: Service\nmetadata:\n  name: a\n/.test(d));
    docs.push(`apiVersion: v1
kind: Pod
metadata: { name: b2, namespace: demo, labels: { app: b } }
spec: { nodeName: node2, containers: [{ name: app, image: x, ports: [{ name: http, containerPort: 8080 }] }] }
status: { podIP: 10.9.0.2 }`);
    writeFileSync(join(workDir, 'topology.yaml'), docs.join('\n---\n'));
    const changed = await simUp({ name, source: workDir });
    assert.deepEqual(changed.pods.map((p) => p.key), ['demo/a1', 'demo/b1', 'demo/b2']);
    const netns = await simNetns(name);
    assert.ok(!netns.includes(`nmsim-${name}-pod-demo_a2`), 'removed pod gone');
    assert.ok(!existsSync(`/etc/netns/nmsim-${name}-pod-demo_a2`));
    assert.ok(netns.includes(`nmsim-${name}-pod-demo_b2`));
    assert.deepEqual(changed.services.map((s) => s.key), ['demo/b']);
    assert.deepEqual(changed.services[0]!.ports[0]!.endpoints, ['10.244.2.11:8080', '10.9.0.2:8080', '[fd00:244:2::11]:8080']);
    const save = await run('nsenter', [`--net=${changed.nodes[0]!.netnsPath}`, '--', `iptables-${changed.iptablesBackend}-save`, '-t', 'nat']);
    assert.ok(!save.stdout.includes('10.96.0.10'), 'rules of the removed Service are gone');
    assert.equal(save.stdout.split('\n').filter((l) => l.includes('demo/b:http ->')).length, 2);
    // b2's address is outside node2's CIDR: reachable through host routes, from both nodes.
    await serverInPod(changed, 'demo/b2', 8080, children);
    assert.deepEqual(await clientInPod(changed, 'demo/a1', '10.9.0.2', 8080, 'off-cidr'), { code: 0, stdout: '10.244.1.11|off-cidr', stderr: '' });
    assert.deepEqual(await clientInPod(changed, 'demo/b1', '10.9.0.2', 8080, 'off-cidr-same'), { code: 0, stdout: '10.244.2.11|off-cidr-same', stderr: '' });
    assert.deepEqual(await checkSealed(changed), []);
  });

  await t.test('down after a namespace vanished still removes everything, processes included', async () => {
    const current = loadSimState(name);
    await run('ip', ['netns', 'delete', current.pods.find((p) => p.key === 'demo/b1')!.netns]);
    const status = await simStatus(name);
    assert.equal(status.healthy, false);
    assert.equal(status.pods.find((p) => p.key === 'demo/b1')!.netnsOk, false);
    const report = await simDown(name);
    assert.ok(report.endedPids.length >= 3, `servers ended: ${report.endedPids.join(',')}`);
    await assertGone(name);
    await simDown(name); // idempotent
  });
});

/** The pids whose parent is `pid` (from /proc: no pattern, no guessing). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after the command name (which may hold spaces) start after its ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

/** Running (a zombie whose parent has not reaped it yet has finished). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

test('simulator: down cleans up after an up killed half-way', { timeout: 120_000 }, async (t) => {
  if (!requireRoot(t)) return;
  const name = `k${tag}`;
  addCleanup(t, name);
  const simModule = join(__dirname, '..', 'src', 'sim', 'index.js');
  const child = spawn(process.execPath, ['-e', `require(${JSON.stringify(simModule)}).simUp({ name: ${JSON.stringify(name)}, source: ${JSON.stringify(EXAMPLE_DIR)} }).catch((e) => { console.error(e); process.exit(1); })`], {
    stdio: 'ignore',
    env: { ...process.env, NODEMESH_LOG_LEVEL: 'error' },
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  // Kill it once it has created a few namespaces (the state records them before creating).
  const deadline = Date.now() + 60_000;
  let recorded = 0;
  while (Date.now() < deadline && child.exitCode === null) {
    try {
      recorded = (JSON.parse(readFileSync(`/run/nodemesh-sim/${name}/state.json`, 'utf8')) as SimState).created.netns.length;
    } catch {
      recorded = 0;
    }
    if (recorded >= 4) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  const killedMidway = child.exitCode === null;
  // The commands it was running (`ip netns add`, ...) outlive it: note them, and let them
  // finish before looking at what the crash left, so that none creates something after.
  const orphans = killedMidway ? childrenOf(child.pid!) : [];
  if (killedMidway) child.kill('SIGKILL');
  await exited;
  const settleBy = Date.now() + 30_000;
  while (orphans.some(alive)) {
    assert.ok(Date.now() < settleBy, `commands started by the killed up still running after 30 s: ${orphans.filter(alive).join(', ')}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  t.diagnostic(killedMidway ? `killed up after ${recorded} namespaces were recorded` : 'up finished before it could be killed');
  assert.ok((await simNetns(name)).length > 0, 'the killed up left namespaces behind');

  // An up after the crash finishes the job, and removes what no object wants (here a
  // namespace and a cgroup of a pod that is in no file, as a crash could leave them).
  const ghostNetns = `${netnsPrefix(name)}pod-demo_ghost`;
  await run('ip', ['netns', 'add', ghostNetns]);
  const ghostCgroup = join(requireCgroup2Mount(), 'nodemesh-sim', name, 'node1', 'pods', 'demo_ghost');
  mkdirSync(ghostCgroup, { recursive: true });
  const state = await simUp({ name, source: EXAMPLE_DIR });
  assert.ok(!(await simNetns(name)).includes(ghostNetns), 'unplanned namespace removed');
  assert.ok(!existsSync(ghostCgroup), 'unplanned cgroup removed');
  assert.equal(state.phase, 'ready');
  assert.ok((await simStatus(name)).healthy);
  assert.equal((await simNetns(name)).length, 6, 'fabric, 2 nodes, 3 pods');

  await simDown(name);
  await assertGone(name);
});
