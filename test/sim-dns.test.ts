/**
 * DNS in simulated pods, end to end: the resolv.conf `sim up` writes and the nodes' DNS
 * servers, through the pods' own resolvers (glibc, with the pod's search list and
 * ndots:5), while node1's agent captures a1 with eBPF; then `python3 -m http.server`
 * started in a pod serving at once; a topology change seen by the next query; `down`
 * leaving no server and no file.
 *
 * No timed test on machine speed: resolv.conf says `timeout:5 attempts:1`, so a lookup
 * that waited for an unanswered query takes at least 5 s; each one must finish well
 * before (the figures are printed as diagnostics).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireRoot } from './helpers/privileges';
import { EXAMPLE_TOPOLOGY, ROOT, SimFixture, uniqueSimName, waitFor } from '../src/sim/harness';
import { execInPod, formatStatus, simStatus } from '../src/sim';

/** A lookup that waited for glibc's timeout (resolv.conf: timeout:5 attempts:1) takes >= this. */
const RESOLVER_TIMEOUT_MS = 5000;

/**
 * Lookups through glibc (getaddrinfo, gethostbyaddr) in a mount namespace of their own
 * where /etc/hosts is empty, so that every answer comes from DNS (the simulator's hosts
 * files list the Service names too).
 */
const LOOKUPS = `
import json, socket, sys, time
out = []
for kind, name in json.loads(sys.argv[1]):
    t = time.monotonic()
    try:
        if kind == 'ptr':
            r = socket.gethostbyaddr(name)[0]
        else:
            r = sorted({a[4][0] for a in socket.getaddrinfo(name, None, socket.AF_INET if kind == '4' else socket.AF_INET6)})
    except OSError as e:
        r = {'error': type(e).__name__, 'errno': e.errno}
    out.append({'kind': kind, 'name': name, 'result': r, 'ms': round((time.monotonic() - t) * 1000, 1)})
print(json.dumps(out))
`;

/** One query over TCP to the pod's nameserver (from resolv.conf): the A answers, or the rcode. */
const TCP_QUERY = `
const net = require('net');
const fs = require('fs');
const m = require(process.argv[1]);
const ns = /^nameserver (\\S+)/m.exec(fs.readFileSync('/etc/resolv.conf', 'utf8'))[1];
const q = m.encodeQuery(7, process.argv[2], m.TYPE_A);
const len = Buffer.alloc(2); len.writeUInt16BE(q.length);
const c = net.connect({ host: ns, port: 53, timeout: 5000 }, () => c.write(Buffer.concat([len, q])));
let got = Buffer.alloc(0);
c.on('data', (d) => {
  got = Buffer.concat([got, d]);
  if (got.length >= 2 && got.length >= 2 + got.readUInt16BE(0)) {
    const r = m.parseResponse(got.subarray(2, 2 + got.readUInt16BE(0)));
    console.log(JSON.stringify({ rcode: r.rcode, answers: r.answers.map((a) => a.address) }));
    c.end();
  }
});
c.on('timeout', () => { console.log(JSON.stringify({ error: 'timeout' })); process.exit(3); });
c.on('error', (e) => { console.log(JSON.stringify({ error: e.code })); process.exit(2); });
`;

/** A GET from inside a pod: prints the status code. */
const HTTP_GET = `
require('http').get(process.argv[1], { timeout: 5000 }, (res) => { res.resume(); res.on('end', () => console.log(res.statusCode)); })
  .on('error', (e) => { console.log('ERROR ' + e.code); process.exit(2); })
  .on('timeout', function () { console.log('TIMEOUT'); this.destroy(); });
`;

interface Lookup {
  kind: string;
  name: string;
  result: string[] | string | { error: string; errno: number };
  ms: number;
}

const C_SERVICE = `
---
apiVersion: v1
kind: Service
metadata:
  name: c
  namespace: demo
spec:
  selector: { app: a }
  clusterIP: 10.96.0.30
  ports:
    - { name: http, port: 80, targetPort: 8080 }
`;

/** Running (a zombie not reaped yet has finished). */
function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function lookups(sim: SimFixture, pod: string, queries: Array<[string, string]>): Promise<Lookup[]> {
  const argv = ['unshare', '--mount', 'sh', '-c', 'mount --bind /dev/null /etc/hosts && exec "$@"', 'sh', 'python3', '-c', LOOKUPS, JSON.stringify(queries)];
  return JSON.parse(await sim.runInPod(pod, argv, 60_000)) as Lookup[];
}

function byName(results: Lookup[], kind: string, name: string): Lookup {
  const r = results.find((x) => x.kind === kind && x.name === name);
  assert.ok(r, `no result for ${kind} ${name}`);
  return r;
}

test('DNS in simulated pods: cluster names, short names, PTR, fast negatives, python http.server', { timeout: 300_000 }, async (t: TestContext) => {
  if (!requireRoot(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'nm-dns-'));
  copyFileSync(EXAMPLE_TOPOLOGY, join(dir, 'topology.yaml'));
  const sim = new SimFixture(uniqueSimName('dns'), dir);
  const started: Array<ReturnType<typeof execInPod>> = [];
  let dnsPids: number[] = [];
  t.after(async () => {
    for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await sim.up();
  const { state } = sim;

  // What `up` wrote: a ClusterFirst pod's resolv.conf, pointing at its node's server.
  const a1 = sim.pod('demo/a1');
  const node1 = state.nodes.find((n) => n.name === a1.node)!;
  const resolv = readFileSync(a1.resolvConf!, 'utf8');
  assert.match(resolv, new RegExp(`^nameserver ${node1.gateway.replace(/\./g, '\\.')}$`, 'm'));
  assert.match(resolv, /^search demo\.svc\.cluster\.local svc\.cluster\.local cluster\.local$/m);
  assert.match(resolv, /^options ndots:5 timeout:5 attempts:1$/m);
  dnsPids = state.nodes.map((n) => n.dnsPid!);
  assert.equal(dnsPids.length, state.nodes.length);
  for (const pid of dnsPids) assert.ok(pidAlive(pid), `DNS server ${pid} runs`);
  assert.deepEqual([...state.created.pids].filter((p) => dnsPids.includes(p)).sort(), [...dnsPids].sort(), 'the servers are recorded in the state');
  const status = await simStatus(sim.name);
  assert.deepEqual(status.nodes.map((n) => [n.name, n.dnsOk]), state.nodes.map((n) => [n.name, true]), 'sim status sees every node\'s server');
  assert.match(formatStatus(status), new RegExp(`ok \\(pid ${dnsPids[0]}\\)`));

  // The pod is captured by eBPF while it resolves: DNS over UDP is never steered.
  const agent = await sim.startAgent('node1', ['--capture', 'ebpf']);
  await agent.waitPod('demo/a1', 'enrolled', 30_000);

  const b = state.services.find((s) => s.key === 'demo/b')!;
  const b1 = sim.pod('demo/b1');
  const results = await lookups(sim, 'demo/a1', [
    ['4', 'b.demo.svc.cluster.local'],
    ['4', 'b'],
    ['4', 'b.demo'],
    ['6', 'b'],
    ['4', '10-244-2-11.demo.pod'],
    ['ptr', b1.ips[0]!],
    ['ptr', b.clusterIPs[0]!],
    ['4', 'example.com'],
    ['4', 'nothere.demo.svc.cluster.local'],
    ['ptr', '192.0.2.1'],
  ]);
  t.diagnostic(`lookups from demo/a1 (ms): ${results.map((r) => `${r.kind} ${r.name}=${r.ms}`).join(', ')}`);
  assert.deepEqual(byName(results, '4', 'b.demo.svc.cluster.local').result, [b.clusterIPs[0]]);
  assert.deepEqual(byName(results, '4', 'b').result, [b.clusterIPs[0]], 'short name through the search list');
  assert.deepEqual(byName(results, '4', 'b.demo').result, [b.clusterIPs[0]]);
  assert.deepEqual(byName(results, '6', 'b').result, [b.clusterIPs[1]]);
  assert.deepEqual(byName(results, '4', '10-244-2-11.demo.pod').result, [b1.ips[0]], 'a pod A record');
  assert.equal(byName(results, 'ptr', b1.ips[0]!).result, '10-244-2-11.demo.pod.cluster.local');
  assert.equal(byName(results, 'ptr', b.clusterIPs[0]!).result, 'b.demo.svc.cluster.local');
  for (const [kind, name] of [['4', 'example.com'], ['4', 'nothere.demo.svc.cluster.local'], ['ptr', '192.0.2.1']] as const) {
    const r = byName(results, kind, name);
    assert.ok(typeof r.result === 'object' && !Array.isArray(r.result) && 'error' in r.result, `${name} does not resolve: ${JSON.stringify(r.result)}`);
  }
  for (const r of results) assert.ok(r.ms < RESOLVER_TIMEOUT_MS, `${r.kind} ${r.name} answered in ${r.ms} ms, before any resolver timeout`);

  // TCP too, from the captured pod (its connection goes through the proxy).
  const tcp = JSON.parse(await sim.runInPod('demo/a1', [process.execPath, '-e', TCP_QUERY, join(ROOT, 'dist', 'src', 'sim', 'dns', 'message.js'), 'b.demo.svc.cluster.local'], 30_000)) as { answers?: string[]; error?: string };
  assert.deepEqual(tcp.answers, [b.clusterIPs[0]], `TCP DNS: ${JSON.stringify(tcp)}`);

  // python3 -m http.server looks its host name up (getfqdn) before it serves.
  const startedAt = Date.now();
  const server = execInPod(state, 'demo/b1', ['python3', '-m', 'http.server', '8000'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PYTHONUNBUFFERED: '1' } });
  started.push(server);
  let out = '';
  server.stdout!.on('data', (d) => (out += String(d)));
  server.stderr!.on('data', (d) => (out += String(d)));
  await waitFor('python3 -m http.server to serve', () => out.includes('Serving HTTP'), 60_000);
  const servingMs = Date.now() - startedAt;
  t.diagnostic(`python3 -m http.server in demo/b1: "Serving HTTP" after ${servingMs} ms`);
  assert.ok(servingMs < RESOLVER_TIMEOUT_MS, `http.server served after ${servingMs} ms: no lookup waited for a timeout`);
  assert.equal(await sim.runInPod('demo/a2', [process.execPath, '-e', HTTP_GET, `http://${b1.ips[0]}:8000/`], 30_000), '200');

  // A topology change: the next query after `up` sees it, from the same servers.
  writeFileSync(join(dir, 'topology.yaml'), readFileSync(EXAMPLE_TOPOLOGY, 'utf8') + C_SERVICE);
  await sim.up();
  assert.deepEqual(sim.state.nodes.map((n) => n.dnsPid), dnsPids, 'the servers of the first up are kept');
  const after = await lookups(sim, 'demo/b1', [['4', 'c'], ['4', 'c.demo.svc.cluster.local']]);
  assert.deepEqual(after.map((r) => r.result), [['10.96.0.30'], ['10.96.0.30']], 'another namespace-mate finds c at once');

  await agent.stop();
  server.kill('SIGTERM');
  await once(server, 'exit');
  const etcDirs = state.pods.map((p) => p.resolvConf!);
  await sim.close();
  for (const pid of dnsPids) assert.ok(!pidAlive(pid), `DNS server ${pid} ended by down`);
  for (const file of etcDirs) assert.ok(!existsSync(file), `${file} removed by down`);
  assert.ok(!existsSync(`/run/nodemesh-sim/${sim.name}`), 'no state dir (zone file included)');
});
