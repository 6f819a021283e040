import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireRoot } from '../../../test/helpers/privileges';
import { run, runStatus } from '../../util/exec';
import { Iptables, type IpFamily, type IptablesBackend } from '../../netfilter/iptables';
import { IptablesCapture } from './iptables-capture';
import { iptablesCaptureSettings, renderRuleSet, type IptablesCaptureSettings } from './rules';

/*
 * Root suite: every namespace here is created by the test (nmtest-ipt-<random>), has no
 * route out, and is deleted in t.after even when an assertion fails; every helper process
 * is killed by its pid first. Run once per iptables backend.
 */

const T = '-m comment --comment nodemesh';

/** Listens on each {host, port, label}; answers every connection with where it landed. */
const SERVER = `
const net = require('net');
const specs = JSON.parse(process.argv[1]);
let pending = specs.length;
for (const { host, port, label } of specs) {
  const srv = net.createServer((s) => {
    const info = { label, localAddress: s.localAddress, localPort: s.localPort, remoteAddress: s.remoteAddress, remotePort: s.remotePort };
    console.log(JSON.stringify(info));
    s.end(JSON.stringify(info) + '\\n');
  });
  srv.on('error', (e) => { console.error(label + ': ' + e.message); process.exit(1); });
  srv.listen({ host, port, ipv6Only: host.includes(':') }, () => { if (--pending === 0) console.log('ready'); });
}
`;

/** Connects once and prints {ok, reply} or {ok: false, error}. */
const CLIENT = `
const net = require('net');
const o = JSON.parse(process.argv[1]);
let data = '';
const done = (r) => { process.stdout.write(JSON.stringify(r) + '\\n', () => process.exit(0)); };
const s = net.connect({ host: o.host, port: o.port, localAddress: o.localAddress, family: o.host.includes(':') ? 6 : 4 });
s.setTimeout(o.timeoutMs, () => { s.destroy(); done({ ok: false, error: 'timeout' }); });
s.on('data', (d) => { data += d; });
s.on('end', () => done({ ok: true, reply: JSON.parse(data) }));
s.on('error', (e) => done({ ok: false, error: e.code || e.message }));
`;

interface Reply {
  ok: boolean;
  error?: string;
  reply?: { label: string; localAddress: string; localPort: number; remoteAddress: string; remotePort: number };
}

function nsPath(name: string): string {
  return `/run/netns/${name}`;
}

/** Creates a namespace (lo up) that is deleted when the test ends. */
async function makeNetns(t: TestContext, tag = ''): Promise<string> {
  const name = `nmtest-ipt-${randomBytes(4).toString('hex')}${tag}`;
  await run('ip', ['netns', 'add', name]);
  t.after(async () => {
    await runStatus('ip', ['netns', 'delete', name]);
  });
  await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}

/**
 * lo up plus an interface nm0 with 10.77.0.1/24 (and .5) and 2001:db8:77::1/64, so that
 * 10.77.0.2 is routable but answers nobody: nothing routes out. nm0 is a dummy interface
 * when the kernel has one; otherwise one end of a veth pair whose other end (nm0p, no
 * address) stays in the same namespace.
 */
async function podNetns(t: TestContext): Promise<string> {
  const ns = await makeNetns(t);
  const dummy = await runStatus('ip', ['-n', ns, 'link', 'add', 'nm0', 'type', 'dummy']);
  if (dummy.status !== 0) {
    t.diagnostic(`no dummy interfaces here (${dummy.stderr.trim()}): using a veth pair inside the namespace`);
    await run('ip', ['-n', ns, 'link', 'add', 'nm0', 'type', 'veth', 'peer', 'name', 'nm0p']);
    await run('ip', ['-n', ns, 'link', 'set', 'nm0p', 'up']);
  }
  await run('ip', ['-n', ns, 'addr', 'add', '10.77.0.1/24', 'dev', 'nm0']);
  await run('ip', ['-n', ns, 'addr', 'add', '10.77.0.5/32', 'dev', 'nm0']);
  await run('ip', ['-n', ns, '-6', 'addr', 'add', '2001:db8:77::1/64', 'dev', 'nm0', 'nodad']);
  await run('ip', ['-n', ns, 'link', 'set', 'nm0', 'up']);
  return ns;
}

/** Starts the listener process inside the namespace; killed by pid when the test ends. */
async function startServer(t: TestContext, ns: string, specs: Array<{ host: string; port: number; label: string }>): Promise<string[]> {
  const child = spawn('nsenter', [`--net=${nsPath(ns)}`, '--', process.execPath, '-e', SERVER, JSON.stringify(specs)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: string[] = [];
  t.after(() => {
    if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGKILL');
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += String(d)));
  await new Promise<void>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`server in ${ns} did not start: ${stderr}`)), 10_000);
    child.stdout.on('data', (d) => {
      buf += String(d);
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line === 'ready') {
          clearTimeout(timer);
          resolve();
        } else log.push(line);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server in ${ns} exited (${code}): ${stderr}`));
    });
  });
  return log;
}

async function connect(ns: string, host: string, port: number, options: { localAddress?: string; timeoutMs?: number; uid?: number } = {}): Promise<Reply> {
  const arg = JSON.stringify({ host, port, localAddress: options.localAddress, timeoutMs: options.timeoutMs ?? 3000 });
  // As another user: setpriv changes uid and gid after nsenter has entered the namespace.
  const asUser = options.uid === undefined ? [] : ['setpriv', `--reuid=${options.uid}`, `--regid=${options.uid}`, '--clear-groups', '--'];
  const { stdout } = await run('nsenter', [`--net=${nsPath(ns)}`, '--', ...asUser, process.execPath, '-e', CLIENT, arg], { timeoutMs: 15_000 });
  return JSON.parse(stdout.trim()) as Reply;
}

function label(r: Reply): string {
  return r.ok ? r.reply!.label : `error:${r.error}`;
}

/** iptables-save output without the comment lines and with the chain counters zeroed. */
function normalise(saved: string): string {
  return saved
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('#'))
    .map((l) => l.replace(/\[\d+:\d+\]$/, '[0:0]'))
    .join('\n');
}

function count(haystack: string, needle: string): number {
  return haystack.split('\n').filter((l) => l === needle).length;
}

function assertRulesInstalled(saved: string, family: IpFamily, settings: IptablesCaptureSettings): void {
  const set = renderRuleSet(family, settings);
  for (const j of set.jumps) assert.equal(count(saved, j.rule), 1, `jump appears exactly once (IPv${family}): ${j.rule}\n${saved}`);
  for (const c of set.chains) {
    const have = saved.split('\n').filter((l) => l.startsWith(`-A ${c.name} `));
    assert.deepEqual(have, c.rules, `chain ${c.name} (IPv${family}) holds exactly the rendered rules`);
  }
}

const BACKENDS: IptablesBackend[] = ['nft', 'legacy'];

for (const backend of BACKENDS) {
  test(`iptables capture, ${backend} backend`, { concurrency: false }, async (t) => {
    if (!requireRoot(t)) return;
    const capture = await IptablesCapture.create({ backend });
    assert.equal(capture.backend, backend);
    assert.equal(capture.backendReason, 'given by the caller');

    await t.test('enroll twice is idempotent; release restores the exact nat table', async (t) => {
      const ns = await makeNetns(t);
      const path = nsPath(ns);
      const ipt = new Iptables(backend, path);
      // Someone else's rules, which must survive untouched.
      assert.equal(await ipt.command(4, ['-t', 'nat', '-A', 'OUTPUT', '-p', 'udp', '--dport', '53', '-j', 'ACCEPT']), 0);
      assert.equal(await ipt.command(6, ['-t', 'nat', '-A', 'OUTPUT', '-p', 'udp', '--dport', '53', '-j', 'ACCEPT']), 0);
      assert.equal(await ipt.command(4, ['-t', 'nat', '-N', 'OTHER_CHAIN']), 0);
      assert.equal(await ipt.command(4, ['-t', 'nat', '-A', 'PREROUTING', '-p', 'tcp', '--dport', '2222', '-j', 'OTHER_CHAIN']), 0);
      const before4 = normalise(await ipt.save(4, 'nat'));
      const before6 = normalise(await ipt.save(6, 'nat'));
      assert.equal(await capture.isEnrolled(path), false);

      // Awkward spellings on purpose: "unchanged" below proves the rendered text is exactly what
      // this backend's iptables-save prints (masked host bits, inet_ntop IPv6 forms).
      const settings = iptablesCaptureSettings({
        excludeOutboundPorts: [22, 3306],
        excludeOutboundCIDRs: ['10.96.0.0/12', '192.168.7.9/16', 'fd00::/8', '2001:0DB8:0:0:1:0:0:1', '1:0:0:2:0:0:3:4/128', '::ffff:10.1.2.3/112', '::/0'],
      });
      await capture.enroll(path, settings);
      await capture.enroll(path, settings);
      // Two racing enrolls still leave one copy.
      await Promise.all([capture.enroll(path, settings), capture.enroll(path, settings)]);
      assert.deepEqual(await capture.enrollAndReport(path, settings), { 4: 'unchanged', 6: 'unchanged' });

      const saved4 = await ipt.save(4, 'nat');
      const saved6 = await ipt.save(6, 'nat');
      assertRulesInstalled(saved4, 4, settings);
      assertRulesInstalled(saved6, 6, settings);
      assert.ok(saved4.includes('-A OUTPUT -p udp -m udp --dport 53 -j ACCEPT'));
      assert.ok(saved6.includes('-d fd00::/8') && !saved4.includes('fd00::'), 'each family gets its own CIDRs');
      assert.ok(saved4.includes('-d 10.96.0.0/12') && !saved6.includes('10.96.0.0'));
      // The jump comes first in OUTPUT, so no earlier rule can bypass capture.
      assert.equal(saved4.split('\n').find((l) => l.startsWith('-A OUTPUT ')), `-A OUTPUT -p tcp ${T} -j NODEMESH_OUTPUT`);
      assert.equal(await capture.isEnrolled(path), true);

      const description = await capture.describe(path);
      assert.equal(description.enrolled, true);
      assert.equal(description.ipv6, true);
      assert.deepEqual(description.families.map((f) => f.family), [4, 6]);
      assert.deepEqual(description.families[0]!.chains, renderRuleSet(4, settings).chains);

      await capture.release(path);
      assert.equal(normalise(await ipt.save(4, 'nat')), before4);
      assert.equal(normalise(await ipt.save(6, 'nat')), before6);
      assert.equal(await capture.isEnrolled(path), false);
      // Releasing a pod that is not enrolled is a no-op.
      await capture.release(path);
      assert.equal(normalise(await ipt.save(4, 'nat')), before4);
    });

    await t.test('changed settings and partial earlier attempts are replaced atomically', async (t) => {
      const ns = await makeNetns(t);
      const path = nsPath(ns);
      const ipt = new Iptables(backend, path);
      const before = normalise(await ipt.save(4, 'nat'));

      // A partial earlier attempt: our chain with a stray rule and no jump.
      assert.equal(await ipt.command(4, ['-t', 'nat', '-N', 'NODEMESH_OUTPUT']), 0);
      assert.equal(await ipt.command(4, ['-t', 'nat', '-A', 'NODEMESH_OUTPUT', '-j', 'RETURN']), 0);
      const first = iptablesCaptureSettings({ excludeOutboundPorts: [22] });
      assert.deepEqual(await capture.plan(path, first), { 4: 'replace', 6: 'install' });
      assert.deepEqual(await capture.enrollAndReport(path, first), { 4: 'replace', 6: 'install' });
      assertRulesInstalled(await ipt.save(4, 'nat'), 4, first);

      const second = iptablesCaptureSettings({ excludeOutboundPorts: [22, 5432], excludeInboundPorts: [9090] });
      assert.deepEqual(await capture.enrollAndReport(path, second), { 4: 'replace', 6: 'replace' });
      assertRulesInstalled(await ipt.save(4, 'nat'), 4, second);
      assertRulesInstalled(await ipt.save(6, 'nat'), 6, second);

      const third = iptablesCaptureSettings({ captureInbound: false });
      await capture.enroll(path, third);
      const saved = await ipt.save(4, 'nat');
      assertRulesInstalled(saved, 4, third);
      assert.ok(!saved.includes('NODEMESH_PREROUTING'), 'inbound chain and jump removed');

      // Bad settings never touch the namespace.
      await assert.rejects(capture.enroll(path, iptablesCaptureSettings({ excludeOutboundCIDRs: ['10.0.0.0/99'] })), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ERR_NM_INVALID_CAPTURE_SETTINGS');
        assert.match(err.message, /10\.0\.0\.0\/99/);
        return true;
      });
      assertRulesInstalled(await ipt.save(4, 'nat'), 4, third);

      await capture.release(path);
      assert.equal(normalise(await ipt.save(4, 'nat')), before);
    });

    await t.test('outbound connections are redirected to 127.0.0.1:15001 / [::1]:15001', async (t) => {
      const ns = await podNetns(t);
      const path = nsPath(ns);
      const seen = await startServer(t, ns, [
        { host: '127.0.0.1', port: 15001, label: 'outbound' },
        { host: '::1', port: 15001, label: 'outbound6' },
      ]);
      // Without capture, 10.77.0.2 is a black hole (nobody answers on nm0).
      assert.equal(label(await connect(ns, '10.77.0.2', 80, { timeoutMs: 700 })), 'error:timeout');

      await capture.enroll(path, iptablesCaptureSettings());
      const r = await connect(ns, '10.77.0.2', 80);
      assert.equal(label(r), 'outbound');
      assert.equal(r.reply!.localPort, 15001);
      assert.equal(r.reply!.localAddress, '127.0.0.1');
      assert.ok(seen.some((l) => JSON.parse(l).localPort === 15001), 'the listener saw the connection on 15001');

      // conntrack keeps the original tuple (what SO_ORIGINAL_DST answers from).
      const ct = await runStatus('nsenter', [`--net=${path}`, '--', 'cat', '/proc/net/nf_conntrack']);
      if (ct.status === 0) {
        const entry = ct.stdout.split('\n').find((l) => l.includes(`sport=${r.reply!.remotePort} dport=80 `) && l.includes('dst=10.77.0.2 '));
        assert.ok(entry, `conntrack entry for 10.77.0.2:80:\n${ct.stdout}`);
        assert.match(entry!, /src=127\.0\.0\.1 dst=10\.77\.0\.1 sport=15001 /);
      } else {
        t.diagnostic('/proc/net/nf_conntrack is not available: conntrack check skipped');
      }

      // IPv6 is captured too.
      const r6 = await connect(ns, '2001:db8:77::2', 80);
      assert.equal(label(r6), 'outbound6');
      assert.equal(r6.reply!.localPort, 15001);

      // The self-test probe to the pod's own IP:15009 is redirected like any outbound connection.
      assert.equal(label(await connect(ns, '10.77.0.1', 15009)), 'outbound');
      assert.equal(label(await connect(ns, '2001:db8:77::1', 15009)), 'outbound6');

      await capture.release(path);
      assert.equal(label(await connect(ns, '10.77.0.1', 15009)), 'error:ECONNREFUSED');
    });

    await t.test('loop avoidance: 127.0.0.6, the proxy mark and loopback go direct', async (t) => {
      const ns = await podNetns(t);
      const path = nsPath(ns);
      const ipt = new Iptables(backend, path);
      await startServer(t, ns, [
        { host: '127.0.0.1', port: 15001, label: 'outbound' },
        { host: '0.0.0.0', port: 9000, label: 'direct9000' },
        { host: '0.0.0.0', port: 9200, label: 'direct9200' },
      ]);
      const settings = iptablesCaptureSettings();
      await capture.enroll(path, settings);

      // The mark rule is the first thing NODEMESH_OUTPUT checks, before any REDIRECT.
      const saved = (await ipt.save(4, 'nat')).split('\n').filter((l) => l.startsWith('-A NODEMESH_OUTPUT '));
      assert.equal(saved[0], `-A NODEMESH_OUTPUT -m mark --mark 0x4e4d ${T} -j RETURN`);
      assert.equal(saved[1], `-A NODEMESH_OUTPUT -s 127.0.0.6/32 ${T} -j RETURN`);
      assert.match(saved.at(-1)!, /REDIRECT --to-ports 15001$/);

      // The inbound path's source 127.0.0.6 reaches the real server; 127.0.0.7 (control) is captured.
      const direct = await connect(ns, '10.77.0.1', 9000, { localAddress: '127.0.0.6' });
      assert.equal(label(direct), 'direct9000');
      assert.equal(direct.reply!.remoteAddress, '127.0.0.6');
      assert.equal(label(await connect(ns, '10.77.0.1', 9000, { localAddress: '127.0.0.7' })), 'outbound');
      assert.equal(label(await connect(ns, '10.77.0.1', 9000)), 'outbound');
      // Loopback destinations are never captured.
      assert.equal(label(await connect(ns, '127.0.0.1', 9000)), 'direct9000');

      // A packet carrying the proxy mark is not redirected. Node cannot set SO_MARK without the
      // addon, so a mangle OUTPUT rule (which runs before nat OUTPUT) marks port 9200 instead:
      // nat sees the same skb mark a marked socket would give it.
      assert.equal(label(await connect(ns, '10.77.0.1', 9200)), 'outbound');
      assert.equal(await ipt.command(4, ['-t', 'mangle', '-A', 'OUTPUT', '-p', 'tcp', '--dport', '9200', '-j', 'MARK', '--set-mark', '0x4e4d']), 0);
      assert.equal(label(await connect(ns, '10.77.0.1', 9200)), 'direct9200');
    });

    await t.test('excludeUid: connections of that uid go direct, others are captured; the rules read back unchanged', async (t) => {
      const ns = await podNetns(t);
      const path = nsPath(ns);
      await startServer(t, ns, [
        { host: '127.0.0.1', port: 15001, label: 'outbound' },
        { host: '::1', port: 15001, label: 'outbound6' },
        { host: '0.0.0.0', port: 9000, label: 'direct9000' },
        { host: '::', port: 9000, label: 'direct9000v6' },
      ]);
      const settings = iptablesCaptureSettings({ excludeUid: 1337 });
      assert.deepEqual(await capture.enrollAndReport(path, settings), { 4: 'install', 6: 'install' });
      // iptables-save prints the owner match exactly as rendered, so a second enroll changes nothing.
      assert.deepEqual(await capture.enrollAndReport(path, settings), { 4: 'unchanged', 6: 'unchanged' });
      const ipt = new Iptables(backend, path);
      assertRulesInstalled(await ipt.save(4, 'nat'), 4, settings);
      assertRulesInstalled(await ipt.save(6, 'nat'), 6, settings);

      assert.equal(label(await connect(ns, '10.77.0.1', 9000, { uid: 1337 })), 'direct9000', 'uid 1337 (the sidecar) goes direct');
      assert.equal(label(await connect(ns, '2001:db8:77::1', 9000, { uid: 1337 })), 'direct9000v6');
      assert.equal(label(await connect(ns, '10.77.0.1', 9000, { uid: 1338 })), 'outbound', 'another uid is captured');
      assert.equal(label(await connect(ns, '10.77.0.1', 9000)), 'outbound', 'root is captured');

      // Dropping the setting takes the rule out again.
      assert.deepEqual(await capture.enrollAndReport(path, iptablesCaptureSettings()), { 4: 'replace', 6: 'replace' });
      assert.equal(label(await connect(ns, '10.77.0.1', 9000, { uid: 1337 })), 'outbound');
      await capture.release(path);
    });

    await t.test('sidecar-init from inside the namespace, with only NET_ADMIN and NET_RAW (the injected init container)', async (t) => {
      const ns = await podNetns(t);
      const path = nsPath(ns);
      const cli = join(__dirname, '..', '..', 'cli', 'main.js');
      // What the kubelet gives the init container: root, every capability but these two dropped.
      const asInit = (args: string[]) => runStatus('nsenter', [`--net=${path}`, '--', 'setpriv', '--inh-caps=-all', '--bounding-set=-all,+net_admin,+net_raw', '--',
        process.execPath, cli, 'sidecar-init', '--iptables-backend', backend, ...args], { env: { ...process.env, NODEMESH_LOG_LEVEL: 'warn' } });
      const first = await asInit(['--pod-ip', '10.77.0.1,2001:db8:77::1', '--exclude-uid', '1337']);
      assert.equal(first.status, 0, first.stderr);
      assert.match(first.stdout, /capture rules IPv4 install, IPv6 install/);
      const again = await asInit(['--pod-ip', '10.77.0.1', '--exclude-uid', '1337']);
      assert.equal(again.status, 0, again.stderr);
      assert.match(again.stdout, /IPv4 unchanged, IPv6 unchanged/, 'idempotent');
      const settings = iptablesCaptureSettings({ excludeUid: 1337 });
      const ipt = new Iptables(backend, path);
      assertRulesInstalled(await ipt.save(4, 'nat'), 4, settings);
      assertRulesInstalled(await ipt.save(6, 'nat'), 6, settings);
      // The same capabilities could not enter a namespace: nsenter needs CAP_SYS_ADMIN,
      // which is why the init step runs iptables directly in its own.
      const viaNsenter = await asInit(['--netns', path]);
      assert.notEqual(viaNsenter.status, 0);
      assert.match(viaNsenter.stderr, /Operation not permitted/);
      // The wrong namespace (the pod IP is not here): refused, nothing changed.
      const wrong = await asInit(['--pod-ip', '10.99.0.1']);
      assert.equal(wrong.status, 1);
      assert.match(wrong.stderr, /ERR_NM_SIDECAR_WRONG_NETNS/);
      assertRulesInstalled(await ipt.save(4, 'nat'), 4, settings);
      await capture.release(path);
    });

    await t.test('excluded outbound ports and CIDRs go direct', async (t) => {
      const ns = await podNetns(t);
      await startServer(t, ns, [
        { host: '127.0.0.1', port: 15001, label: 'outbound' },
        { host: '0.0.0.0', port: 9000, label: 'direct9000' },
        { host: '0.0.0.0', port: 9100, label: 'direct9100' },
      ]);
      await capture.enroll(nsPath(ns), iptablesCaptureSettings({ excludeOutboundPorts: [9100], excludeOutboundCIDRs: ['10.77.0.5/32', 'fd00::/8'] }));
      assert.equal(label(await connect(ns, '10.77.0.1', 9100)), 'direct9100');
      assert.equal(label(await connect(ns, '10.77.0.5', 9000)), 'direct9000');
      assert.equal(label(await connect(ns, '10.77.0.1', 9000)), 'outbound', 'control: not excluded, captured');
    });

    await t.test('inbound connections from another namespace land on :15006', async (t) => {
      const pod = await makeNetns(t, '-pod');
      const peer = await makeNetns(t, '-peer');
      await run('ip', ['-n', pod, 'link', 'add', 'nmv0', 'type', 'veth', 'peer', 'name', 'nmv1', 'netns', peer]);
      await run('ip', ['-n', pod, 'addr', 'add', '10.78.0.2/24', 'dev', 'nmv0']);
      await run('ip', ['-n', peer, 'addr', 'add', '10.78.0.1/24', 'dev', 'nmv1']);
      await run('ip', ['-n', pod, 'link', 'set', 'nmv0', 'up']);
      await run('ip', ['-n', peer, 'link', 'set', 'nmv1', 'up']);
      await startServer(t, pod, [
        { host: '127.0.0.1', port: 15001, label: 'outbound' },
        { host: '0.0.0.0', port: 15006, label: 'inbound' },
        { host: '0.0.0.0', port: 15008, label: 'tunnel' },
        { host: '0.0.0.0', port: 8080, label: 'app' },
        { host: '0.0.0.0', port: 8081, label: 'app8081' },
      ]);
      assert.equal(label(await connect(peer, '10.78.0.2', 8080)), 'app', 'before enroll the app answers');

      const path = nsPath(pod);
      await capture.enroll(path, iptablesCaptureSettings({ excludeInboundPorts: [8081] }));
      const r = await connect(peer, '10.78.0.2', 8080);
      assert.equal(label(r), 'inbound');
      assert.equal(r.reply!.localPort, 15006);
      assert.equal(r.reply!.remoteAddress, '10.78.0.1');
      assert.equal(label(await connect(peer, '10.78.0.2', 15008)), 'tunnel', 'the tunnel port is not redirected');
      assert.equal(label(await connect(peer, '10.78.0.2', 8081)), 'app8081', 'excluded inbound port');
      // The inbound path reaches the app from 127.0.0.6 without being captured again.
      assert.equal(label(await connect(pod, '10.78.0.2', 8080, { localAddress: '127.0.0.6' })), 'app');

      await capture.enroll(path, iptablesCaptureSettings({ captureInbound: false }));
      assert.equal(label(await connect(peer, '10.78.0.2', 8080)), 'app', 'inbound capture turned off');
      await capture.release(path);
      assert.equal(label(await connect(peer, '10.78.0.2', 8080)), 'app');
    });

    await t.test('a vanished namespace: enroll fails with ERR_NM_POD_NETNS_GONE, release is a no-op', async (t) => {
      const ns = await makeNetns(t);
      const path = nsPath(ns);
      await capture.enroll(path, iptablesCaptureSettings());
      await run('ip', ['netns', 'delete', ns]);

      await assert.rejects(capture.enroll(path, iptablesCaptureSettings()), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ERR_NM_POD_NETNS_GONE');
        assert.ok(err.message.includes(path), err.message);
        assert.match(err.message, /pod may have been deleted/);
        return true;
      });
      await capture.release(path);
      assert.equal(await capture.isEnrolled(path), false);
      assert.equal((await capture.describe(path)).netnsPresent, false);

      // A namespace file left behind without its nsfs mount counts as gone too.
      const stale = join(await fs.mkdtemp(join(tmpdir(), 'nmtest-ipt-')), 'netns');
      t.after(() => fs.rm(join(stale, '..'), { recursive: true, force: true }));
      await fs.writeFile(stale, '');
      await assert.rejects(capture.enroll(stale, iptablesCaptureSettings()), { code: 'ERR_NM_POD_NETNS_GONE' });
      await capture.release(stale);
    });
  });
}
