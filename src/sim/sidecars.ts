import { closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { adminGet } from '../admin/admin-client';
import { IptablesCapture } from '../capture/iptables/iptables-capture';
import { NodemeshError, describeError } from '../errors';
import { logger } from '../log';
import type { SidecarPodRecord } from '../admin/debug-replies';
import type { HandoverStatus } from '../runtime/handover/status';
import { cgroupProcs } from './cgroup';
import { cmdline, endProcess, logTail as tail, pidAlive } from './processes';
import { spawnIn } from './exec';
import { simSidecarIdentityArgs } from './identity';
import { stateDir } from './names';
import type { StateStore, SimPod } from './state';
import type { TopologyPlan } from './topology';
import { PROXY_NODE_FLAGS } from '../proxy/node-flags';

/**
 * Sidecar mode in the simulator: a pod whose effective mode is `sidecar` gets what an
 * injected pod gets on a cluster, in the same order: the init step (`nodemesh
 * sidecar-init`, run to completion inside the pod's namespace and cgroup), then its own
 * proxy process (`nodemesh sidecar`) inside the pod, left running when `up` returns. The
 * proxy reads the simulation's YAML source, serves its admin API on a unix socket at
 * /run/nodemesh-sim/<sim>/sidecars/<ns>_<pod>.sock (SimPod.sidecarAdminSocket) and logs to
 * the .log file beside it. Its pid is in the state (created.pids, SimPod.sidecarPid); it
 * lives in the pod's cgroup, so `down` (which ends every process in the sim's cgroups)
 * ends it. A pod that leaves sidecar mode has its proxy stopped and its rules removed.
 */

const log = logger('sim');

/** The CLI this module runs (dist/src/cli/main.js when compiled). */
const CLI = resolve(__dirname, '..', 'cli', 'main.js');
const READY_TIMEOUT_MS = 30_000;

export function sidecarDir(sim: string): string {
  return join(stateDir(sim), 'sidecars');
}

export function sidecarAdminSocketPath(sim: string, namespace: string, pod: string): string {
  return join(sidecarDir(sim), `${namespace}_${pod}.sock`);
}

export function sidecarLogPath(sim: string, namespace: string, pod: string): string {
  return join(sidecarDir(sim), `${namespace}_${pod}.log`);
}

/** The pod's sidecar process when it is alive, still in the pod's cgroup, and reading `source`. */
function liveSidecar(pod: SimPod, source: string): boolean {
  if (pod.sidecarPid === undefined) return false;
  const argv = cmdline(pod.sidecarPid);
  if (!argv || !argv.includes('sidecar') || !argv.includes(pod.key)) return false;
  if (!cgroupProcs(pod.cgroup).includes(pod.sidecarPid)) return false;
  return argv.includes(source);
}

async function runToCompletion(pod: SimPod, argv: string[]): Promise<{ code: number | null; output: string }> {
  const child = spawnIn(pod.cgroup, pod.netns, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => { output += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { output += d.toString(); });
  const code = await new Promise<number | null>((done, fail) => {
    child.once('error', fail);
    child.once('close', (c) => done(c));
  });
  return { code, output };
}

function forgetPid(store: StateStore, pid: number | undefined): void {
  if (pid === undefined) return;
  store.state.created.pids = store.state.created.pids.filter((p) => p !== pid);
}

/** Stops a pod's sidecar and removes its capture rules (the pod left sidecar mode). */
export async function stopSidecar(store: StateStore, pod: SimPod): Promise<void> {
  if (pod.sidecarPid !== undefined && cgroupProcs(pod.cgroup).includes(pod.sidecarPid)) await endProcess(pod.sidecarPid);
  forgetPid(store, pod.sidecarPid);
  if (existsSync(pod.netnsPath)) {
    const capture = await IptablesCapture.create({ backend: store.state.iptablesBackend });
    await capture.release(pod.netnsPath);
  }
  delete pod.sidecarPid;
  delete pod.sidecarAdminSocket;
  store.save();
  log.info({ sim: store.state.name, pod: pod.key }, 'sidecar stopped and capture rules removed');
}

/** Runs the init step and starts the proxy of one sidecar pod; resolves once the proxy serves the pod. */
export async function ensureSidecar(store: StateStore, pod: SimPod): Promise<void> {
  const { state } = store;
  const sock = sidecarAdminSocketPath(state.name, pod.namespace, pod.name);
  mkdirSync(sidecarDir(state.name), { recursive: true });

  // 1. The init step, every time: idempotent, and it repairs rules that someone removed.
  const init = await runToCompletion(pod, [process.execPath, CLI, 'sidecar-init', '--pod-ip', pod.ips.join(','), '--iptables-backend', state.iptablesBackend]);
  if (init.code !== 0) {
    throw new NodemeshError('ERR_NM_SIM_SIDECAR', `the sidecar init step of pod ${pod.key} failed (exit ${init.code}): ${init.output.trim().slice(-1500)}`, {
      hint: 'the pod is left without its sidecar; fix the cause and run `sim up` again',
    });
  }

  // 2. The proxy, unless the one from a previous `up` still runs.
  if (liveSidecar(pod, state.source)) {
    pod.sidecarAdminSocket = sock;
    store.save();
    return;
  }
  const old = pod.sidecarPid !== undefined && cgroupProcs(pod.cgroup).includes(pod.sidecarPid) ? pod.sidecarPid : undefined;
  if (old !== undefined) {
    // A sidecar of an older source: the new one starts beside it and takes its listeners
    // and connections over (the hand-over socket), as an in-place restart of a sidecar
    // container would; the old one leaves by itself. Failing that, the old way: end it, start anew.
    try {
      await replaceSidecar(store, pod, old);
      return;
    } catch (err) {
      log.warn({ sim: state.name, pod: pod.key, err: describeError(err) }, 'the new sidecar did not take over from the old one: ending the old one and starting afresh');
      if (pidAlive(old)) await endProcess(old);
    }
  }
  if (pod.sidecarPid !== undefined) {
    forgetPid(store, pod.sidecarPid);
    delete pod.sidecarPid;
  }
  const pid = spawnSidecar(store, pod);
  await waitServing(store, pod, pid, (record) => record.status === 'enrolled');
  log.info({ sim: state.name, pod: pod.key, pid, adminSocket: sock }, 'sidecar started');
}

/**
 * A new sidecar beside the running one (`old`), same hand-over socket: it takes the
 * listeners and connections over and the old one exits once it holds nothing. Resolves
 * when the new one serves the pod and the old one is gone.
 */
async function replaceSidecar(store: StateStore, pod: SimPod, old: number): Promise<void> {
  const sock = sidecarAdminSocketPath(store.state.name, pod.namespace, pod.name);
  const pid = spawnSidecar(store, pod);
  await waitServing(store, pod, pid, (record, handover) => record.status === 'enrolled' && handover?.role === 'receiver' && handover.state === 'done' && handover.peerPid === old);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (pidAlive(old) && cgroupProcs(pod.cgroup).includes(old)) {
    if (Date.now() > deadline) throw new NodemeshError('ERR_NM_SIM_SIDECAR', `the old sidecar of pod ${pod.key} (pid ${old}) did not exit within ${READY_TIMEOUT_MS} ms of the hand-over`);
    await new Promise((r) => setTimeout(r, 100));
  }
  forgetPid(store, old);
  store.save();
  log.info({ sim: store.state.name, pod: pod.key, pid, oldPid: old, adminSocket: sock }, 'sidecar restarted with a hand-over');
}

/** Starts `nodemesh sidecar` inside the pod (its namespace and cgroup); records its pid. */
function spawnSidecar(store: StateStore, pod: SimPod): number {
  const { state } = store;
  const sock = sidecarAdminSocketPath(state.name, pod.namespace, pod.name);
  const fd = openSync(sidecarLogPath(state.name, pod.namespace, pod.name), 'a');
  let pid: number | undefined;
  try {
    const identity = simSidecarIdentityArgs(state, pod);
    const child = spawnIn(pod.cgroup, pod.netns, [process.execPath, ...PROXY_NODE_FLAGS, CLI, 'sidecar', '--source', state.source, '--pod', pod.key, '--admin-socket', sock, '--handover-socket', sock.replace(/\.sock$/, '.handover.sock'), ...identity], {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: { ...process.env, NODEMESH_LOG_LEVEL: process.env.NODEMESH_SIDECAR_LOG_LEVEL ?? 'info' },
    });
    pid = child.pid;
    child.unref();
  } finally {
    closeSync(fd);
  }
  if (pid === undefined) throw new NodemeshError('ERR_NM_SIM_SIDECAR', `could not start the sidecar of pod ${pod.key}`);
  // `ip netns exec` execs the program, so this pid becomes the sidecar's own.
  state.created.pids.push(pid);
  pod.sidecarPid = pid;
  pod.sidecarAdminSocket = sock;
  store.save();
  return pid;
}

/** Until the sidecar `pid` answers on its admin socket as `ready` says (its record, its hand-over state), within READY_TIMEOUT_MS. */
async function waitServing(store: StateStore, pod: SimPod, pid: number, ready: (record: SidecarPodRecord, handover: HandoverStatus | undefined) => boolean): Promise<void> {
  const sock = sidecarAdminSocketPath(store.state.name, pod.namespace, pod.name);
  const logFile = sidecarLogPath(store.state.name, pod.namespace, pod.name);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = 'no answer yet';
  for (;;) {
    if (!pidAlive(pid)) {
      throw new NodemeshError('ERR_NM_SIM_SIDECAR', `the sidecar of pod ${pod.key} exited during start-up: ${tail(logFile)}`, { hint: `its log: ${logFile}` });
    }
    try {
      const [record] = await adminGet<SidecarPodRecord[]>(sock, '/debug/pods', 2000);
      const handover = await adminGet<HandoverStatus>(sock, '/debug/handover', 2000).catch(() => undefined);
      if (record && ready(record, handover)) return;
      last = `${record?.status}: ${record?.reason ?? ''}; hand-over ${JSON.stringify(handover ?? null)}`;
      if (record?.status === 'failed') {
        throw new NodemeshError('ERR_NM_SIM_SIDECAR', `the sidecar of pod ${pod.key} cannot serve it: ${record.reason}`, { hint: `its log: ${logFile}` });
      }
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_NM_SIM_SIDECAR') throw err;
      last = describeError(err);
    }
    if (Date.now() > deadline) {
      throw new NodemeshError('ERR_NM_SIM_SIDECAR', `the sidecar of pod ${pod.key} was not ready within ${READY_TIMEOUT_MS} ms (${last})`, { hint: `its log: ${logFile}` });
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Brings every pod's sidecar in line with the plan: started for sidecar pods, stopped for the others. */
export async function reconcileSidecars(store: StateStore, plan: TopologyPlan): Promise<void> {
  const wanted = new Set(plan.pods.filter((p) => p.mode === 'sidecar' && !p.pod.hostNetwork).map((p) => p.key));
  // Sidecars of pods that were recreated or removed ended with their cgroups.
  store.state.created.pids = store.state.created.pids.filter(pidAlive);
  for (const pod of store.state.pods) {
    if (wanted.has(pod.key)) await ensureSidecar(store, pod);
    else if (pod.sidecarPid !== undefined || pod.sidecarAdminSocket !== undefined) await stopSidecar(store, pod);
  }
}
