/**
 * `nodemesh bench --scale`: what the node agent costs as its node's work and the cluster
 * around it grow. One simulation (one node, up to the largest pod count of pods) and, per
 * step, one agent started from scratch, timed until ready, then left idle:
 *
 *   pods      N ambient pods on the agent's node (settings.pods, e.g. 1, 25, 100);
 *   services  one ambient pod plus N Services with E Pod objects each, on nodes outside
 *             the simulation (settings.services, e.g. 0 and 1000 x 10 = 10,000 endpoints);
 *   kube      one ambient pod, the agent with --kube against a test API server run in
 *             this process (src/kube/testing/fake-apiserver.ts): what the Kubernetes
 *             client costs. No changes are timed there.
 *
 * Per step: time to ready (every pod enrolled, every Service in /debug/config), CPU to
 * ready, idle RSS and the start-up high-water mark after settings.idleS, idle CPU over that
 * window; then settings.changes changes, one after another, each one new Service written
 * into the source directory (renamed into place, so the agent never reads half a file) and
 * timed until /debug/config counts it. The agent's source is its own directory: the
 * simulator builds only the node's pods, never the 10,000 far ones.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseAllDocuments } from 'yaml';
import { adminGet } from '../admin/admin-client';
import { FakeApiServer, kubeConfigFor, type KubeObject } from '../kube/testing/fake-apiserver';
import type { PodRecord } from '../admin/debug-replies';
import { describeError } from '../errors';
import { PROXY_NODE_FLAGS } from '../proxy/node-flags';
import { SimFixture, uniqueSimName, waitFor, type AgentHandle } from '../sim/harness';
import { peakRssKiB, processCpuS } from './procfs';
import type { ChangeApply, ScaleFigures, ScaleRow, ScaleSeries } from './report-schema';
import { SCALE_NODE, scaleChange, scalePodKey, scalePods, scaleServices } from './scale-topology';
import { execInPod } from '../sim/exec';

export interface ScaleOptions {
  pods: number[];
  services: number[];
  endpointsPerService: number;
  changes: number;
  idleS: number;
  log: (line: string) => void;
}

export const SCALE_FULL = { pods: [1, 25, 100], services: [0, 1000], endpointsPerService: 10, changes: 5, idleS: 15 };
export const SCALE_QUICK = { pods: [1, 5], services: [0, 100], endpointsPerService: 10, changes: 3, idleS: 12 };

/** How long one agent may take to be ready (the largest source takes seconds today). */
const READY_TIMEOUT_MS = Number(process.env.NODEMESH_SCALE_READY_MS ?? 180_000);
/** How long one change may take to show in /debug/config. */
const CHANGE_TIMEOUT_MS = 30_000;

const mib = (kib: number | undefined) => (kib === undefined ? null : Math.round((kib / 1024) * 10) / 10);

/** VmRSS of a process in KiB; undefined when it is gone. */
export function rssKiB(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** RSS of a bare Node.js process with the agent's V8 flags, once idle. */
async function bareNodeRss(idleS: number): Promise<number | null> {
  const child = spawn(process.execPath, [...PROXY_NODE_FLAGS, '-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  try {
    await sleep(Math.max(1, idleS) * 1000);
    return mib(rssKiB(child.pid!));
  } finally {
    child.kill('SIGKILL');
  }
}

/** Writes a file the directory source picks up whole: a hidden temporary name (skipped), then a rename. */
function writeWhole(dir: string, name: string, text: string): void {
  const tmp = join(dir, `.${name}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, join(dir, name));
}

interface ConfigCounts {
  version: number;
  services: number;
}

const configOf = (agent: AgentHandle) => adminGet<ConfigCounts>(agent.socket, '/debug/config', 10_000);

export async function runScale(o: ScaleOptions): Promise<ScaleFigures> {
  const started = Date.now();
  const log = o.log;
  const maxPods = Math.max(1, ...o.pods);
  const dir = join(tmpdir(), `nm-scale-${process.pid}-${Date.now().toString(36)}`);
  const simDir = join(dir, 'sim');
  const sourceDir = join(dir, 'source');
  mkdirSync(simDir, { recursive: true });
  mkdirSync(sourceDir, { recursive: true });
  writeFileSync(join(simDir, 'topology.yaml'), scalePods(maxPods, 0));
  const sim = new SimFixture(uniqueSimName('scale'), simDir);
  const rows: ScaleRow[] = [];
  const skipped: string[] = [];
  let bare: number | null = null;
  // Interrupted (Ctrl-C, the test's bounded SIGTERM): remove the simulation, like the modes' phase.
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    log('scale: interrupted: removing the simulation');
    void sim.close().finally(() => {
      rmSync(dir, { recursive: true, force: true });
      process.exit(130);
    });
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    log(`scale: simulator ${sim.name}, ${maxPods} pods on ${SCALE_NODE}`);
    await sim.up();
    bare = await bareNodeRss(o.idleS);
    log(`scale: bare node ${bare} MiB RSS`);

    const step = async (series: ScaleSeries, enrolled: number, services: number, extraArgs: string[] = []): Promise<void> => {
      for (const f of readdirSync(sourceDir)) rmSync(join(sourceDir, f), { force: true });
      writeWhole(sourceDir, 'pods.yaml', scalePods(maxPods, enrolled));
      if (services > 0) writeWhole(sourceDir, 'services.yaml', scaleServices(services, o.endpointsPerService));
      const t0 = performance.now();
      const agent = await sim.startAgent(SCALE_NODE, ['--drain-ms', '200', ...extraArgs], sourceDir);
      const pid = agent.child.pid!;
      try {
        await waitFor(`the scale agent to enroll ${enrolled} pods and load ${services} Services`, async () => {
          const pods = await adminGet<PodRecord[]>(agent.socket, '/debug/pods', 10_000);
          if (pods.filter((p) => p.status === 'enrolled').length < enrolled) return undefined;
          return (await configOf(agent)).services >= services;
        }, READY_TIMEOUT_MS).catch((err: unknown) => {
          throw new Error(`${describeError(err)}; the agent's log ends:\n${agent.log.slice(-3000)}`);
        });
        const readyS = (performance.now() - t0) / 1000;
        const startCpuS = processCpuS(pid);
        await sleep(o.idleS * 1000); // the idle window measured, not a wait for state
        const idleCpuS = processCpuS(pid) - startCpuS;
        const row: ScaleRow = {
          series,
          enrolledPods: enrolled,
          services,
          endpointsPerService: services > 0 ? o.endpointsPerService : 0,
          podObjects: maxPods + services * o.endpointsPerService,
          readyS: Math.round(readyS * 1000) / 1000,
          idleRssMiB: mib(rssKiB(pid)),
          peakRssMiB: mib(peakRssKiB(pid)),
          startCpuS: Math.round(startCpuS * 100) / 100,
          idleCpuPercent: Math.round((idleCpuS / o.idleS) * 10000) / 100,
          // With --kube the changes would go through the API: not measured there.
          change: series === 'kube' ? null : await changes(agent, sourceDir, o.changes),
        };
        rows.push(row);
        log(`scale: ${series} pods=${enrolled} services=${services}: ready ${row.readyS} s, idle ${row.idleRssMiB} MiB, peak ${row.peakRssMiB} MiB, start CPU ${row.startCpuS} s` +
          (row.change ? `, change median ${row.change.medianMs} max ${row.change.maxMs} ms` : ''));
      } finally {
        await agent.stop();
      }
    };

    for (const n of [...new Set(o.pods)].sort((a, b) => a - b)) await step('pods', n, 0);
    for (const s of [...new Set(o.services)].sort((a, b) => a - b)) await step('services', 1, s);
    // --kube: the same one ambient pod, from a test API server (src/kube/testing), which runs
    // in this process so that the agent's RSS is the agent's alone.
    const api = await FakeApiServer.start();
    try {
      // A pod is found by its processes: the one ambient pod gets a sandbox process, as a
      // kubelet would start (it ends with the simulation, which ends its cgroups' processes).
      const sandbox = execInPod(sim.state, scalePodKey(1), ['sleep', String(Math.ceil(READY_TIMEOUT_MS / 1000) + o.idleS + 60)], { stdio: 'ignore' });
      for (const doc of parseAllDocuments(scalePods(maxPods, 1))) {
        const object = doc.toJS() as KubeObject;
        // The simulator names each pod's cgroup by its uid, which is how an agent with
        // --kube finds the pod's processes (agent/proc-pod-locator.ts): the same uid here.
        if (object.kind === 'Pod' && object.metadata) object.metadata.uid = sim.pod(`${object.metadata.namespace}/${object.metadata.name}`).uid;
        api.create(object);
      }
      const kubeconfig = join(dir, 'kubeconfig.json');
      writeFileSync(kubeconfig, kubeConfigFor(api).exportConfig(), { mode: 0o600 });
      try {
        await step('kube', 1, 0, ['--kube', '--kubeconfig', kubeconfig]);
      } finally {
        sandbox.kill('SIGKILL');
      }
    } finally {
      await api.close();
    }
  } catch (err) {
    throw new Error(`the scale phase failed: ${describeError(err)}`);
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    if (!interrupted) {
      await sim.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return {
    settings: { pods: o.pods, services: o.services, endpointsPerService: o.endpointsPerService, changes: o.changes, idleS: o.idleS, kube: true },
    bareNodeRssMiB: bare,
    rows,
    skipped,
    elapsedS: Math.round((Date.now() - started) / 100) / 10,
  };
}

/** Writes `count` changes one after another; each timed from the rename until /debug/config counts the new Service. */
async function changes(agent: AgentHandle, sourceDir: string, count: number): Promise<ChangeApply | null> {
  if (count <= 0) return null;
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const before = (await configOf(agent)).services;
    const t0 = performance.now();
    writeWhole(sourceDir, `change-${i}.yaml`, scaleChange(i));
    const deadline = t0 + CHANGE_TIMEOUT_MS;
    for (;;) {
      if ((await configOf(agent)).services > before) break;
      if (performance.now() > deadline) throw new Error(`change ${i} (a new Service) did not show in /debug/config within ${CHANGE_TIMEOUT_MS} ms`);
      await sleep(2);
    }
    times.push(performance.now() - t0);
  }
  const r = (n: number) => Math.round(n * 10) / 10;
  return { changes: count, medianMs: r(median(times)), maxMs: r(Math.max(...times)) };
}
