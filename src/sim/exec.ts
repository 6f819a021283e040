import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { constants } from 'node:os';
import { NodemeshError } from '../errors';
import { loadSimState, type SimNode, type SimPod, type SimState } from './state';

/**
 * Running programs inside a simulated pod (or node): in its cgroup and its network
 * namespace, with its /etc/hosts. The shell writes its own pid into the cgroup before it
 * execs, so the program and all its children are in the cgroup from their first
 * instruction (which is what cgroup-attached BPF programs key on).
 */

/** "ns/name", or "name" in namespace default. */
export function findPod(state: SimState, ref: string): SimPod {
  const key = ref.includes('/') ? ref : `default/${ref}`;
  const pod = state.pods.find((p) => p.key === key);
  if (!pod) {
    throw new NodemeshError('ERR_NM_SIM_POD_NOT_FOUND', `simulation ${state.name} has no pod ${key}`, {
      hint: `pods: ${state.pods.map((p) => p.key).join(', ') || 'none'} (\`nodemesh sim status --name ${state.name}\`)`,
    });
  }
  return pod;
}

export function findNode(state: SimState, name: string): SimNode {
  const node = state.nodes.find((n) => n.name === name);
  if (!node) {
    throw new NodemeshError('ERR_NM_SIM_NODE_NOT_FOUND', `simulation ${state.name} has no node ${name}`, {
      hint: `nodes: ${state.nodes.map((n) => n.name).join(', ') || 'none'}`,
    });
  }
  return node;
}

function resolveState(sim: string | SimState): SimState {
  return typeof sim === 'string' ? loadSimState(sim) : sim;
}

const JOIN_AND_EXEC = 'cg="$1"; shift; echo $$ > "$cg/cgroup.procs" && exec "$@"';

/**
 * Spawns argv in a cgroup and a named network namespace (undefined: the host's). The pid is
 * the program's own once the shell has exec'd it.
 */
export function spawnIn(cgroup: string, netns: string | undefined, argv: readonly string[], options: SpawnOptions = {}): ChildProcess {
  if (argv.length === 0) throw new NodemeshError('ERR_NM_SIM_EXEC', 'nothing to run: give a command');
  const program = netns === undefined ? argv : ['ip', 'netns', 'exec', netns, ...argv];
  return spawn('sh', ['-c', JOIN_AND_EXEC, 'sh', cgroup, ...program], options);
}

/**
 * Starts a process in a pod: returns the ChildProcess (the pid is the program's own
 * once `ip netns exec` has exec'd it). `pod` is "ns/name" or "name" (namespace default).
 */
export function execInPod(sim: string | SimState, pod: string, argv: readonly string[], options: SpawnOptions = {}): ChildProcess {
  const state = resolveState(sim);
  const target = findPod(state, pod);
  return spawnIn(target.cgroup, target.netns, argv, options);
}

/**
 * Starts a process in a node's namespace; in the node's agent cgroup when
 * `agentCgroup` is true (what a node agent under test wants), else in no sim cgroup.
 */
export function execOnNode(sim: string | SimState, node: string, argv: readonly string[], options: SpawnOptions & { agentCgroup?: boolean } = {}): ChildProcess {
  const state = resolveState(sim);
  const target = findNode(state, node);
  const { agentCgroup, ...spawnOptions } = options;
  if (agentCgroup) return spawnIn(target.agentCgroup, target.netns, argv, spawnOptions);
  if (argv.length === 0) throw new NodemeshError('ERR_NM_SIM_EXEC', 'nothing to run: give a command');
  return spawn('ip', ['netns', 'exec', target.netns, ...argv], spawnOptions);
}

/** Exit code of a finished child: its status, or 128 + signal number like a shell. */
export function waitExit(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code !== null) resolve(code);
      else resolve(128 + (signal ? (constants.signals[signal] ?? 0) : 0));
    });
  });
}

/** For the CLI: runs argv in a pod with the terminal's stdio; resolves with its exit code. */
export async function runInPod(sim: string | SimState, pod: string, argv: readonly string[]): Promise<number> {
  return waitExit(execInPod(sim, pod, argv, { stdio: 'inherit' }));
}
