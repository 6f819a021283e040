import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { NodemeshError, describeError } from '../errors';
import { CaClient } from '../identity/ca-client';
import { DEFAULT_CA_SERVER_NAME } from '../identity/ca-server';
import { generateCaFiles, readCaFiles, tokenKey } from '../identity/ca-state';
import { mintLocalToken } from '../identity/local-token';
import { logger } from '../log';
import { PROXY_NODE_FLAGS } from '../proxy/node-flags';
import { ensureCgroupDir } from './cgroup';
import { spawnIn } from './exec';
import { stateDir } from './names';
import { cmdline, endProcess, logTail, pidAlive } from './processes';
import type { SimIdentity, SimPod, SimState, StateStore } from './state';

/**
 * The simulator's CA: `nodemesh identity serve` in local mode, started by `sim up` (its
 * key in the simulation's state directory, its pods the simulation's source, each node's
 * agent a token of its own) and ended by `sim down` with the rest (it runs in the
 * simulation's cgroup `<root>/_identity`). The same CA code a cluster runs, with local
 * tokens where a cluster has TokenReview.
 */

const log = logger('sim');
const CLI = resolve(__dirname, '..', 'cli', 'main.js');
const READY_TIMEOUT_MS = 30_000;
/** Not a node name (node names are DNS labels): the sweeper of `up` keeps it. */
export const IDENTITY_CGROUP = '_identity';

export function simIdentityPaths(sim: string, workloadLifetime = '24h'): SimIdentity {
  const dir = join(stateDir(sim), 'identity');
  return { socket: join(dir, 'ca.sock'), stateDir: join(dir, 'ca'), bundleFile: join(dir, 'ca', 'ca.crt'), tokenDir: join(dir, 'tokens'), logFile: join(dir, 'ca.log'), workloadLifetime };
}

export function identityCgroup(state: SimState): string {
  return `${state.cgroupRoot}/${IDENTITY_CGROUP}`;
}

/** The flags an agent of `node` needs to get its pods' certificates from the simulator's CA. */
export function simAgentIdentityArgs(state: SimState, node: string): string[] {
  const id = state.identity;
  if (!id) return [];
  return ['--ca-address', `unix:${id.socket}`, '--ca-bundle-file', id.bundleFile, '--ca-token-file', join(id.tokenDir, `${node}.jwt`), '--ca-bundle-refresh-ms', '1000'];
}

/**
 * The flags a sidecar of `pod` needs: a token bound to that pod (as Kubernetes projects a
 * pod's service-account token), so the CA gives it its own pod's certificate and no
 * other. Minted when asked, into the simulation's token directory.
 */
export function simSidecarIdentityArgs(state: SimState, pod: SimPod): string[] {
  const id = state.identity;
  if (!id) return [];
  const file = join(id.tokenDir, `pod-${pod.namespace}_${pod.name}.jwt`);
  const token = mintLocalToken(tokenKey(id.stateDir), { node: pod.node, pod: { namespace: pod.namespace, name: pod.name, serviceAccount: pod.serviceAccount || 'default' } });
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return ['--ca-address', `unix:${id.socket}`, '--ca-bundle-file', id.bundleFile, '--ca-token-file', file, '--ca-bundle-refresh-ms', '1000'];
}

/** The CA of a previous `up`, alive and serving this source with this lifetime. */
function liveCa(id: SimIdentity | undefined, source: string): boolean {
  if (id?.pid === undefined || !pidAlive(id.pid)) return false;
  const argv = cmdline(id.pid);
  return !!argv && argv.includes('identity') && argv.includes(`unix:${id.socket}`) && argv.includes(id.workloadLifetime) && argv.includes(source);
}

/** Keys, tokens for every node, and a running CA; a CA from a previous `up` that still runs is kept. */
export async function ensureSimCa(store: StateStore, options: { workloadLifetime?: string } = {}): Promise<void> {
  const { state } = store;
  const id = { ...simIdentityPaths(state.name, options.workloadLifetime ?? state.identity?.workloadLifetime), ...(state.identity?.pid !== undefined ? { pid: state.identity.pid } : {}) };
  mkdirSync(id.tokenDir, { recursive: true, mode: 0o700 });
  if (!readCaFiles(id.stateDir)) await generateCaFiles(id.stateDir, 'cluster.local');
  const key = tokenKey(id.stateDir);
  for (const node of state.nodes) writeFileSync(join(id.tokenDir, `${node.name}.jwt`), `${mintLocalToken(key, { node: node.name })}\n`, { mode: 0o600 });
  state.identity = id;
  store.save();
  if (liveCa(id, state.source)) return;
  if (id.pid !== undefined) await stopSimCa(store);
  await startSimCa(store);
}

/** Starts the CA process (the state's identity paths must exist: ensureSimCa). */
export async function startSimCa(store: StateStore): Promise<void> {
  const { state } = store;
  const id = state.identity;
  if (!id) throw new NodemeshError('ERR_NM_SIM_IDENTITY', `simulation ${state.name} has no CA set up`, { hint: 'run `nodemesh sim up` again' });
  const cgroup = identityCgroup(state);
  ensureCgroupDir(state.cgroup2Mount, cgroup, (p) => store.record('cgroups', p));
  const fd = openSync(id.logFile, 'a');
  let pid: number | undefined;
  try {
    const argv = [process.execPath, ...PROXY_NODE_FLAGS, CLI, 'identity', 'serve', '--state-dir', id.stateDir, '--listen', `unix:${id.socket}`, '--source', state.source, '--workload-lifetime', id.workloadLifetime];
    // In the host's network namespace: agents reach it on its unix socket.
    const child = spawnIn(cgroup, undefined, argv, { detached: true, stdio: ['ignore', fd, fd] });
    pid = child.pid;
    child.unref();
  } finally {
    closeSync(fd);
  }
  if (pid === undefined) throw new NodemeshError('ERR_NM_SIM_IDENTITY', 'could not start the CA');
  id.pid = pid;
  state.created.pids.push(pid);
  store.save();
  const client = new CaClient({ address: `unix:${id.socket}`, trustBundlePem: readFileSync(id.bundleFile, 'utf8'), serverName: DEFAULT_CA_SERVER_NAME }, () => '');
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (!pidAlive(pid)) throw new NodemeshError('ERR_NM_SIM_IDENTITY', `the CA exited during start-up: ${logTail(id.logFile)}`, { hint: `its log: ${id.logFile}` });
    const answered = await client.trustBundle().then(() => true, (err: unknown) => describeError(err));
    if (answered === true) break;
    if (Date.now() > deadline) throw new NodemeshError('ERR_NM_SIM_IDENTITY', `the CA did not answer within ${READY_TIMEOUT_MS} ms (${answered})`, { hint: `its log: ${id.logFile}` });
    await new Promise((r) => setTimeout(r, 100));
  }
  log.info({ sim: state.name, pid, socket: id.socket }, 'CA started');
}

/** Ends the CA process (tests of a CA outage; `down` ends it with the cgroup anyway). */
export async function stopSimCa(store: StateStore): Promise<void> {
  const id = store.state.identity;
  if (id?.pid === undefined) return;
  await endProcess(id.pid);
  store.state.created.pids = store.state.created.pids.filter((p) => p !== id.pid);
  delete id.pid;
  store.save();
}
