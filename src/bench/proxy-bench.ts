/**
 * npm run bench:proxy — HTTP/1.1 keep-alive with a 1 KB body through the node proxy and
 * direct: requests per second per proxy core, p50/p99 latency, proxy CPU per request.
 *
 * On the simulator, a topology of its own (written to a temporary directory): namespace
 * `bench`; client c1 and server s1 on node1, server s2 on node2; Services s-local (-> s1)
 * and s-remote (-> s2), port 80 -> 8080, where the L7 test app answers POST /echo.
 * Modes: `direct` (c1 annotated off: kube-proxy's DNAT only) and `proxy` (c1 ambient, one
 * agent for node1 with `--capture ebpf`: c1's outbound listener -> the L7 pipeline ->
 * the server; the servers are not enrolled, so there is one proxy hop). Placements: `same`
 * node (s-local) and `cross` node (s-remote). The agent runs for the whole benchmark, so its
 * CPU in direct runs is its idle cost.
 *
 * Each (round, mode, placement) runs the load generator (src/sim/apps/load-generator.ts)
 * in c1 twice:
 *   closed  closed loop with --connections connections as fast as answers come, for
 *           throughput;
 *   open    open loop at --rate req/s for latency (latency from each request's scheduled
 *           send time, so stalls are not hidden); --connections keep-alive connections.
 * Each run's --warmup seconds are discarded. Modes alternate order every round (ABBA) so
 * machine drift hits both alike. CPU is sampled at the start and end of the measured
 * window (the generator prints markers): the agent's utime+stime from /proc/<pid>/stat,
 * the client's and server's pod cgroup (cpu.stat usage_usec), and the machine (/proc/stat).
 * Percentiles come from the rounds' merged HDR histograms; rates and CPU from their sums.
 * Prints a table and the issue's three targets; nothing here is a pass/fail test.
 *
 * Proxy runs check that the proxy saw the traffic (istio_requests_total grew by at least
 * the requests answered) and direct runs that it did not.
 *
 * Flags: --rounds R (2), --duration S (open-loop window, 8), --max-duration S (closed-loop
 *        window, 5), --warmup S (1), --rate R (1000), --connections C (16),
 *        --body-bytes B (1024), --json FILE (the figures as JSON),
 *        --profile DIR (afterwards, run a closed-loop same-node load against an agent
 *        started with `node --cpu-prof --cpu-prof-dir DIR` and print its top self-time
 *        functions; --profile-duration S, default 10; --profile-load open|closed, default
 *        closed: open profiles the open loop at --rate instead),
 *        --sk-msg (the agent moves app<->proxy bytes with sk_msg, `agent --sk-msg`),
 *        --authz-rules N (the same-node server s1 is enrolled too, and a third mode
 *        `authz` runs with one AuthorizationPolicy of N rules on it, the request matching
 *        only the last; its CPU per 1000 requests is compared with `proxy`, which then
 *        also has s1 enrolled and no policy: the cost of authorizing each request).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { adminGet } from '../admin/admin-client';
import { removeSimAgentState } from '../agent/agent-state';
import { PROXY_NODE_FLAGS } from '../proxy/node-flags';
import { mergeHistograms, type LatencySummary, type LoadResult } from '../sim/apps/load-generator';
import { CLI, SimFixture, uniqueSimName, waitFor, AgentHandle } from '../sim/harness';
import { selfTimes, type CpuProfile } from './cpu-profile';
import { runBuiltinLoad } from './load';
import { CLK_TCK, cgroupCpuS, machineBusyS, processCpu } from './procfs';
import { sumMetric } from './runner';
import { sourceState } from './source-state';
import { PROXY_BENCH_LAYOUT, proxyBenchTopology } from './topology';

const CLIENT = PROXY_BENCH_LAYOUT.client.pod;
/** The agent's capture flags; --sk-msg adds sk_msg redirection of the app<->proxy hop. */
const AGENT_ARGS = ['--capture', 'ebpf'];

type ModeName = 'direct' | 'proxy' | 'authz';
type PlacementName = 'same' | 'cross';
type LoadName = 'open' | 'closed';

const PLACEMENTS: Array<{ name: PlacementName; server: string; url: string }> = PROXY_BENCH_LAYOUT.servers.map((s) => ({
  name: s.name,
  server: s.pod,
  url: s.url,
}));
// Closed first: its warm-up brings the proxy's code to speed (JIT), so that the open loop
// does not start with a backlog built while the proxy was still cold.
const LOADS: LoadName[] = ['closed', 'open'];

/** CPU counters at one moment: seconds, except the machine's busy time and the clock. */
interface CpuSample {
  at: number;
  /** CLOCK_MONOTONIC in microseconds: the clock of V8's CPU profiles. */
  monoUs: number;
  /** The agent's utime + stime, and its stime alone. */
  agent: number;
  agentSystem: number;
  client: number;
  server: number;
  machineBusy: number;
}

interface Cell {
  mode: ModeName;
  placement: PlacementName;
  load: LoadName;
  runs: number;
  requests: number;
  windowS: number;
  histograms: string[];
  statuses: Record<string, number>;
  errors: Record<string, number>;
  cpu: { agent: number; agentSystem: number; client: number; server: number; machineBusy: number; wall: number };
  perRoundRps: number[];
  sendLagP99Ms: number[];
}

function writeTopology(dir: string, mode: 'ambient' | 'off', serverSameNodeAmbient = false): void {
  writeFileSync(join(dir, 'topology.yaml'), proxyBenchTopology(mode, { serverSameNodeAmbient }));
}

/** N ALLOW rules on s1, a request to /echo matching only the last one (every rule is tried). */
function authzPolicy(rules: number): string {
  const paths = Array.from({ length: rules }, (_, i) => (i === rules - 1 ? '/echo' : `/not-this-${i}`));
  return `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: bench-rules, namespace: bench }
spec:
  selector: { matchLabels: { app: s-local } }
  rules:
${paths.map((p) => `    - to: [{ operation: { methods: [POST], paths: ["${p}"] } }]`).join('\n')}
`;
}

/** The sum of istio_requests_total over every label set. */
async function proxyRequests(agent: AgentHandle): Promise<number> {
  return sumMetric(await agent.metrics(), 'istio_requests_total');
}

interface RunOutcome {
  result: LoadResult;
  start: CpuSample;
  end: CpuSample;
}

/**
 * Runs the load generator in the client pod; samples CPU counters when it prints its
 * window markers. Killed (by its pid) if it overruns its own deadline.
 */
async function runLoad(sim: SimFixture, agentPid: number, serverPod: string, args: string[], limitMs: number): Promise<RunOutcome> {
  const clientCgroup = sim.pod(CLIENT).cgroup;
  const serverCgroup = sim.pod(serverPod).cgroup;
  const sample = (): CpuSample => {
    const agent = processCpu(agentPid);
    return {
      at: performance.now(),
      monoUs: Number(process.hrtime.bigint() / 1000n),
      agent: agent.user + agent.system,
      agentSystem: agent.system,
      client: cgroupCpuS(clientCgroup),
      server: cgroupCpuS(serverCgroup),
      machineBusy: machineBusyS(),
    };
  };
  let start: CpuSample | undefined;
  let end: CpuSample | undefined;
  const result = await runBuiltinLoad(sim.state, CLIENT, args, (edge) => {
    if (edge === 'start') start = sample();
    else end = sample();
  }, limitMs);
  return { result, start: start!, end: end! };
}

function emptyCell(mode: ModeName, placement: PlacementName, load: LoadName): Cell {
  return { mode, placement, load, runs: 0, requests: 0, windowS: 0, histograms: [], statuses: {}, errors: {}, cpu: { agent: 0, agentSystem: 0, client: 0, server: 0, machineBusy: 0, wall: 0 }, perRoundRps: [], sendLagP99Ms: [] };
}

function addCounts(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

/** Aggregated row of the table. */
interface Row {
  mode: ModeName;
  placement: PlacementName;
  load: LoadName;
  runs: number;
  requests: number;
  achievedRps: number;
  latencyMs: LatencySummary;
  addedP50Ms: number;
  addedP99Ms: number;
  /** Proxy (agent) CPU seconds per 1000 requests; requests per proxy CPU second. */
  proxyCpuPer1000: number;
  rpsPerProxyCore: number;
  /** The share of the proxy's CPU spent in the kernel (stime). */
  proxySystemShare: number;
  /**
   * The server pod's and the client pod's CPU seconds per 1000 requests: the scale for the
   * proxy's figure (the server is a plain node:http app that handles one socket per request).
   */
  serverCpuPer1000: number;
  clientCpuPer1000: number;
  /** Average cores busy in the window. */
  cores: { proxy: number; client: number; server: number; machine: number; other: number };
  failures: number;
  perRoundRps: number[];
  sendLagP99Ms: number[];
}

function toRow(c: Cell): Omit<Row, 'addedP50Ms' | 'addedP99Ms'> {
  const wall = c.cpu.wall;
  const known = c.cpu.agent + c.cpu.client + c.cpu.server;
  return {
    mode: c.mode,
    placement: c.placement,
    load: c.load,
    runs: c.runs,
    requests: c.requests,
    achievedRps: c.requests / c.windowS,
    latencyMs: mergeHistograms(c.histograms),
    proxyCpuPer1000: (c.cpu.agent / c.requests) * 1000,
    rpsPerProxyCore: c.requests / c.cpu.agent,
    proxySystemShare: c.cpu.agentSystem / c.cpu.agent,
    serverCpuPer1000: (c.cpu.server / c.requests) * 1000,
    clientCpuPer1000: (c.cpu.client / c.requests) * 1000,
    cores: {
      proxy: c.cpu.agent / wall,
      client: c.cpu.client / wall,
      server: c.cpu.server / wall,
      machine: c.cpu.machineBusy / wall,
      other: (c.cpu.machineBusy - known) / wall,
    },
    failures: Object.values(c.statuses).reduce((a, b) => a + b, 0) + Object.values(c.errors).reduce((a, b) => a + b, 0),
    perRoundRps: c.perRoundRps,
    sendLagP99Ms: c.sendLagP99Ms,
  };
}

// --- profile ---------------------------------------------------------------------------

async function profileAgent(sim: SimFixture, dir: string, profileDir: string, load: string[], connections: number, durationS: number, warmupS: number, loadName: string): Promise<void> {
  mkdirSync(profileDir, { recursive: true });
  const before = new Set(readdirSync(profileDir));
  writeTopology(dir, 'ambient');
  const instance = `sim-${sim.name}-node1`;
  const child = spawn(process.execPath, [...PROXY_NODE_FLAGS, '--cpu-prof', '--cpu-prof-dir', profileDir, CLI, 'agent', '--sim', sim.name, '--node', 'node1', '--source', dir, ...AGENT_ARGS], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODEMESH_LOG_LEVEL: 'info' },
  });
  const agent = new AgentHandle(child, instance);
  let window: { fromUs: number; toUs: number } | undefined;
  let summary = '';
  try {
    await waitFor('the profiled agent to serve its admin socket', async () => {
      if (child.exitCode !== null) throw new Error(`the profiled agent exited with ${child.exitCode}: ${agent.log.slice(-2000)}`);
      return (await adminGet(agent.socket, '/debug/pods')) !== undefined;
    }, 20_000);
    await agent.waitPod(CLIENT, 'enrolled', 20_000);
    const run = await runLoad(sim, child.pid!, 'bench/s1', [...load, '--duration', String(durationS), '--warmup', String(warmupS)], (durationS + warmupS) * 1000 + 60_000);
    const agentS = run.end.agent - run.start.agent;
    window = { fromUs: run.start.monoUs, toUs: run.end.monoUs };
    summary = `${run.result.requests} requests in ${run.result.windowS.toFixed(1)} s, ${run.result.achievedRps.toFixed(0)} req/s, agent ${agentS.toFixed(2)} CPU s (${(run.result.requests / agentS).toFixed(0)} req/s per proxy core; profiler overhead included)`;
  } finally {
    if (child.exitCode === null && child.signalCode === null) await agent.stop();
    removeSimAgentState(sim.name);
  }
  const made = readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile') && !before.has(f));
  if (made.length === 0) throw new Error(`the agent wrote no .cpuprofile to ${profileDir}`);
  const file = made.map((f) => join(profileDir, f)).sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0]!;
  const { top, byFile, busyMs, idleMs } = selfTimes(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, window);
  console.log(`\nagent CPU profile under ${loadName} (same node, ${connections} connections): ${summary}`);
  console.log(`${file}; samples of the measured window: busy ${(busyMs / 1000).toFixed(2)} s, idle ${(idleMs / 1000).toFixed(2)} s\n`);
  console.log(`${'#'.padStart(2)} ${'self ms'.padStart(9)} ${'self %'.padStart(7)}  function (location)`);
  top.slice(0, 15).forEach((s, i) => {
    console.log(`${String(i + 1).padStart(2)} ${s.selfMs.toFixed(1).padStart(9)} ${(s.share * 100).toFixed(1).padStart(6)}%  ${s.name}${s.where ? ` (${s.where})` : ''}`);
  });
  console.log(`\nself time by file or package`);
  for (const s of byFile.slice(0, 12)) console.log(`   ${s.selfMs.toFixed(1).padStart(9)} ${(s.share * 100).toFixed(1).padStart(6)}%  ${s.name}`);
}

// --- main ------------------------------------------------------------------------------

const fmt = (n: number, digits = 3) => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const signed = (n: number, digits = 3) => (Number.isFinite(n) ? `${n >= 0 ? '+' : ''}${n.toFixed(digits)}` : '-');

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '2' },
      duration: { type: 'string', default: '8' },
      'max-duration': { type: 'string', default: '5' },
      warmup: { type: 'string', default: '1' },
      rate: { type: 'string', default: '1000' },
      connections: { type: 'string', default: '16' },
      'body-bytes': { type: 'string', default: '1024' },
      json: { type: 'string' },
      profile: { type: 'string' },
      'profile-duration': { type: 'string', default: '10' },
      'profile-load': { type: 'string', default: 'closed' },
      'sk-msg': { type: 'boolean', default: false },
      'authz-rules': { type: 'string', default: '0' },
    },
  });
  const authzRules = Number(values['authz-rules']);
  if (!Number.isInteger(authzRules) || authzRules < 0) throw new Error('--authz-rules must be a whole number >= 0');
  const MODES: ModeName[] = authzRules > 0 ? ['direct', 'proxy', 'authz'] : ['direct', 'proxy'];
  const rounds = Number(values.rounds);
  const duration = Number(values.duration);
  const maxDuration = Number(values['max-duration']);
  const warmup = Number(values.warmup);
  const rate = Number(values.rate);
  const connections = Number(values.connections);
  const bodyBytes = Number(values['body-bytes']);
  const profileDuration = Number(values['profile-duration']);
  for (const [flag, v, min] of [['rounds', rounds, 1], ['duration', duration, 0.1], ['max-duration', maxDuration, 0.1], ['warmup', warmup, 0], ['rate', rate, 1], ['connections', connections, 1], ['body-bytes', bodyBytes, 0], ['profile-duration', profileDuration, 0.1]] as const) {
    if (!Number.isFinite(v) || v < min) throw new Error(`--${flag} must be a number >= ${min}`);
  }
  if (values['sk-msg']) AGENT_ARGS.push('--sk-msg');
  if (values['profile-load'] !== 'open' && values['profile-load'] !== 'closed') throw new Error('--profile-load must be open or closed');
  if (process.getuid?.() !== 0) throw new Error('bench:proxy builds network namespaces: run it as root');

  const common = ['--connections', String(connections), '--body-bytes', String(bodyBytes), '--warmup', String(warmup), '--timeout', '10000'];
  const loadArgs: Record<LoadName, string[]> = {
    open: ['--rate', String(rate), '--duration', String(duration), ...common],
    closed: ['--rate', '0', '--duration', String(maxDuration), ...common],
  };
  const limitMs: Record<LoadName, number> = { open: (warmup + duration) * 1000 + 60_000, closed: (warmup + maxDuration) * 1000 + 60_000 };

  const dir = mkdtempSync(join(tmpdir(), 'nm-bench-proxy-'));
  writeTopology(dir, 'off', authzRules > 0);
  const cells = new Map<string, Cell>();
  const cell = (m: ModeName, p: PlacementName, l: LoadName) => {
    const k = `${m}/${p}/${l}`;
    if (!cells.has(k)) cells.set(k, emptyCell(m, p, l));
    return cells.get(k)!;
  };
  for (const m of MODES) for (const p of PLACEMENTS) for (const l of ['open', 'closed'] as const) cell(m, p.name, l);

  const started = Date.now();
  const source = sourceState();
  const sim = new SimFixture(uniqueSimName('bprx'), dir);
  let interrupted = false;
  let removing: Promise<void> | undefined;
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    console.error('bench:proxy: interrupted, removing the simulation');
    removing = sim.close().finally(() => {
      rmSync(dir, { recursive: true, force: true });
      process.exit(130);
    });
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await sim.up();
    const appArgs = ['--http', '8080', '--h2c', 'off', '--grpc', 'off', '--ws', 'off', '--tls', 'off', '--tcp', 'off'];
    await sim.startL7App('bench/s1', ['--name', 's1', ...appArgs]);
    await sim.startL7App('bench/s2', ['--name', 's2', ...appArgs]);
    const agent = await sim.startAgent('node1', AGENT_ARGS);
    if (authzRules > 0) await agent.waitPod(PLACEMENTS[0]!.server, 'enrolled', 20_000);
    let enrolled = false;
    let withPolicy = false;
    const setMode = async (mode: ModeName) => {
      const want = mode !== 'direct';
      if (want !== enrolled) {
        writeTopology(dir, want ? 'ambient' : 'off', authzRules > 0);
        await agent.waitPod(CLIENT, want ? 'enrolled' : 'absent', 20_000);
        enrolled = want;
      }
      const policy = mode === 'authz';
      if (authzRules > 0 && policy !== withPolicy) {
        const before = (await adminGet<{ version: number }>(agent.socket, '/debug/config')).version;
        if (policy) writeFileSync(join(dir, 'authz.yaml'), authzPolicy(authzRules));
        else rmSync(join(dir, 'authz.yaml'), { force: true });
        await waitFor('the agent to load the authorization policy change', async () => ((await adminGet<{ version: number }>(agent.socket, '/debug/config')).version !== before ? true : undefined), 20_000);
        withPolicy = policy;
      }
    };

    for (let round = 1; round <= rounds; round++) {
      // Alternate the order every round (ABBA) so that drift hits every mode alike.
      const modes: ModeName[] = round % 2 === 1 ? MODES : [...MODES].reverse();
      for (const mode of modes) {
        await setMode(mode);
        for (const placement of PLACEMENTS) {
          for (const load of LOADS) {
            if (interrupted) return;
            const before = await proxyRequests(agent);
            const { result, start, end } = await runLoad(sim, agent.child.pid!, placement.server, ['--url', placement.url, ...loadArgs[load]], limitMs[load]);
            const seen = (await proxyRequests(agent)) - before;
            if (mode !== 'direct' && seen < result.requests) throw new Error(`proxy run ${placement.name}/${load}: the proxy counted ${seen} requests, the client ${result.requests}: traffic bypassed the proxy`);
            if (mode === 'direct' && seen > 0) throw new Error(`direct run ${placement.name}/${load}: the proxy counted ${seen} requests: the client is still captured`);
            const c = cell(mode, placement.name, load);
            c.runs += 1;
            c.requests += result.requests;
            c.windowS += result.windowS;
            c.histograms.push(result.histogram);
            addCounts(c.statuses, result.statuses);
            addCounts(c.errors, result.errors);
            c.cpu.agent += end.agent - start.agent;
            c.cpu.agentSystem += end.agentSystem - start.agentSystem;
            c.cpu.client += end.client - start.client;
            c.cpu.server += end.server - start.server;
            c.cpu.machineBusy += end.machineBusy - start.machineBusy;
            c.cpu.wall += (end.at - start.at) / 1000;
            c.perRoundRps.push(result.achievedRps);
            if (result.sendLagMs) c.sendLagP99Ms.push(result.sendLagMs.p99);
            const wall = (end.at - start.at) / 1000;
            const failures = Object.values(result.statuses).reduce((a, b) => a + b, 0) + Object.values(result.errors).reduce((a, b) => a + b, 0);
            console.error(
              `round ${round} ${mode.padEnd(6)} ${placement.name.padEnd(5)} ${load.padEnd(6)} ${result.achievedRps.toFixed(0).padStart(6)} req/s  p50 ${fmt(result.latencyMs.p50)} p99 ${fmt(result.latencyMs.p99)} ms  ` +
                `cores: proxy ${fmt((end.agent - start.agent) / wall, 2)} client ${fmt((end.client - start.client) / wall, 2)} server ${fmt((end.server - start.server) / wall, 2)} machine ${fmt((end.machineBusy - start.machineBusy) / wall, 2)}` +
                (failures ? `  FAILURES ${failures} ${JSON.stringify({ ...result.statuses, ...result.errors })}` : ''),
            );
          }
        }
      }
    }
    await setMode('direct');
    await agent.stop();
    removeSimAgentState(sim.name);

    if (values.profile) {
      const openLoop = values['profile-load'] === 'open';
      await profileAgent(sim, dir, values.profile, ['--url', PLACEMENTS[0]!.url, ...(openLoop ? loadArgs.open : loadArgs.closed)], connections, profileDuration, warmup, openLoop ? `open-loop load at ${rate} req/s` : 'closed-loop load');
    }
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    if (!interrupted) {
      await sim.close();
      rmSync(dir, { recursive: true, force: true });
    } else {
      // The signal also ended the load generator, which fails the run: do not let the
      // error path exit before the simulation is gone.
      await removing;
    }
  }

  // --- report --------------------------------------------------------------------------
  const partial = [...cells.values()].map(toRow);
  const rows: Row[] = partial.map((r) => {
    const base = partial.find((b) => b.mode === 'direct' && b.placement === r.placement && b.load === r.load)!;
    return { ...r, addedP50Ms: r.latencyMs.p50 - base.latencyMs.p50, addedP99Ms: r.latencyMs.p99 - base.latencyMs.p99 };
  });
  const elapsed = (Date.now() - started) / 1000;
  console.log(`\nHTTP/1.1 keep-alive, POST ${bodyBytes} B to /echo (${bodyBytes} B back), ${rounds} interleaved rounds; open loop ${rate} req/s x ${duration} s, closed loop ${connections} connections x ${maxDuration} s; ${warmup} s warm-up per run excluded; ${elapsed.toFixed(0)} s in all`);
  console.log(`source: ${source}; agent: ${AGENT_ARGS.join(" ")}`);
  console.log('latency in ms (open loop: from the scheduled send); +p50/+p99 = proxy minus direct; cpu s/1k = proxy CPU s per 1000 requests;');
  console.log('req/s/core = requests per proxy CPU second; sys% = the proxy CPU spent in the kernel; cores = average CPU cores busy in the window (proxy = the node1 agent)\n');
  const header = [
    'mode'.padEnd(6), 'place'.padEnd(5), 'load'.padEnd(6), 'req/s'.padStart(7), 'p50'.padStart(7), 'p90'.padStart(7), 'p99'.padStart(7), 'p999'.padStart(7),
    '+p50'.padStart(7), '+p99'.padStart(7), 'cpu s/1k'.padStart(8), 'req/s/core'.padStart(10), 'sys%'.padStart(4), '  cores: proxy client server machine other',
  ].join(' ');
  console.log(header);
  for (const r of rows) {
    const isProxy = r.mode !== 'direct';
    console.log([
      r.mode.padEnd(6), r.placement.padEnd(5), r.load.padEnd(6), r.achievedRps.toFixed(0).padStart(7),
      fmt(r.latencyMs.p50).padStart(7), fmt(r.latencyMs.p90).padStart(7), fmt(r.latencyMs.p99).padStart(7), fmt(r.latencyMs.p999).padStart(7),
      (isProxy ? signed(r.addedP50Ms) : '').padStart(7), (isProxy ? signed(r.addedP99Ms) : '').padStart(7),
      (isProxy ? fmt(r.proxyCpuPer1000, 4) : '').padStart(8), (isProxy ? r.rpsPerProxyCore.toFixed(0) : '').padStart(10),
      (isProxy ? (r.proxySystemShare * 100).toFixed(0) : '').padStart(4),
      `         ${fmt(r.cores.proxy, 2).padStart(5)} ${fmt(r.cores.client, 2).padStart(6)} ${fmt(r.cores.server, 2).padStart(6)} ${fmt(r.cores.machine, 2).padStart(7)} ${fmt(r.cores.other, 2).padStart(5)}`,
      r.failures ? `  ${r.failures} failed` : '',
    ].join(' '));
  }
  const lags = rows.filter((r) => r.load === 'open').flatMap((r) => r.sendLagP99Ms);
  if (lags.length) console.log(`\nopen-loop timer lateness (counted in the latencies above, alike in both modes): p99 ${fmt(Math.min(...lags))}-${fmt(Math.max(...lags))} ms per run`);
  const spread = rows.filter((r) => r.load === 'closed').map((r) => `${r.mode}/${r.placement} ${r.perRoundRps.map((x) => x.toFixed(0)).join(', ')}`);
  console.log(`closed-loop req/s per round: ${spread.join('; ')}`);

  const proxyRows = (load: LoadName) => rows.filter((r) => r.mode === 'proxy' && r.load === load);
  const check = (met: boolean) => (met ? 'met    ' : 'NOT met');
  console.log(`\ntargets (proxy rows; "per core" = per core of proxy CPU):`);
  const perCore = proxyRows('closed');
  console.log(`  ${check(perCore.every((r) => r.rpsPerProxyCore >= 15_000))}  >= 15,000 req/s per core (closed loop): ${perCore.map((r) => `${r.placement} ${r.rpsPerProxyCore.toFixed(0)}`).join(', ')}`);
  const added = proxyRows('open');
  console.log(`  ${check(added.every((r) => r.addedP99Ms <= 0.5))}  <= 0.5 ms added p99 at ${rate} req/s: ${added.map((r) => `${r.placement} ${signed(r.addedP99Ms)} ms`).join(', ')}`);
  console.log(`  ${check(added.every((r) => r.proxyCpuPer1000 <= 0.1))}  <= 0.1 CPU s per 1000 requests at ${rate} req/s: ${added.map((r) => `${r.placement} ${fmt(r.proxyCpuPer1000, 4)}`).join(', ')}` +
    `  (closed loop: ${perCore.map((r) => `${r.placement} ${fmt(r.proxyCpuPer1000, 4)}`).join(', ')})`);
  // What the pods' own processes spend at the same rate: the proxy relays two sockets per
  // request where the server answers one, so this is the scale its CPU figure is read on.
  const directOpen = rows.filter((r) => r.mode === 'direct' && r.load === 'open');
  console.log(`  for scale, CPU s per 1000 requests at ${rate} req/s in direct runs: the node:http server ${directOpen.map((r) => `${r.placement} ${fmt(r.serverCpuPer1000, 4)}`).join(', ')};` +
    ` the load generator ${directOpen.map((r) => `${r.placement} ${fmt(r.clientCpuPer1000, 4)}`).join(', ')}`);
  if (authzRules > 0) {
    // The cost of authorizing each request: the same path with and without the policy.
    for (const load of ['open', 'closed'] as const) {
      const without = rows.find((r) => r.mode === 'proxy' && r.placement === 'same' && r.load === load)!;
      const withRules = rows.find((r) => r.mode === 'authz' && r.placement === 'same' && r.load === load)!;
      const ratio = withRules.proxyCpuPer1000 / without.proxyCpuPer1000;
      console.log(`  ${check(ratio <= 1.05)}  authorization with ${authzRules} rules, same node, ${load} loop: CPU s per 1000 requests ${fmt(withRules.proxyCpuPer1000, 4)} vs ${fmt(without.proxyCpuPer1000, 4)} without (${ratio.toFixed(3)}x; goal <= 1.05x); p50 ${fmt(withRules.latencyMs.p50)} vs ${fmt(without.latencyMs.p50)} ms`);
    }
  }
  const busy = rows.filter((r) => r.load === 'closed').map((r) => r.cores.machine);
  const ncpu = cpus().length;
  if (Math.max(...busy) > 0.9 * ncpu) console.log(`\nnote: closed-loop runs kept the machine's cores busy (${busy.map((b) => b.toFixed(2)).join(', ')} of ${ncpu}): client, proxy and server share them, so req/s is CPU-bound and "req/s per core" is the figure that carries over`);

  if (values.json) {
    writeFileSync(values.json, JSON.stringify({ source, rounds, duration, maxDuration, warmup, rate, connections, bodyBytes, authzRules, clkTck: CLK_TCK, rows }, null, 2));
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(`bench:proxy: ${String(err instanceof Error ? err.stack : err)}`);
    process.exit(1);
  });
}
