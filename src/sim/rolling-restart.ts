import { once } from 'node:events';
import { join } from 'node:path';
import { runDirFor } from '../agent/build-agent';
import { NodemeshError } from '../errors';
import { sleep } from '../util/deadline';
import type { AgentHandle, HandoverStatus, SimFixture } from './harness';

/**
 * A DaemonSet rolling update with maxSurge, on one simulated node: the new agent starts
 * beside the old one (same node, same flags), and the restart is over once the new agent
 * serves every pod the old one had enrolled and the old agent has exited by itself. No
 * signal is sent to the old agent: with the hand-over it leaves when it holds nothing.
 *
 * Every wait has a deadline; a new agent that exits, or an old one that stays, fails the
 * restart with both logs. Both processes stay registered with the fixture, whose close()
 * ends whatever is left.
 */

export interface RollingRestartOptions {
  /** The new agent's flags; default: the old agent's (its --admin-socket replaced, below). */
  args?: string[];
  /** Pods the new agent must have enrolled; default: those the old one had enrolled. */
  pods?: string[];
  /** Until the new agent serves the pods and the old one is gone (default 90 s). */
  timeoutMs?: number;
  /** How often both agents' /debug/handover and /debug/pods are read (default 50 ms). */
  pollMs?: number;
}

export interface RollingRestart {
  /** The new agent: the node's agent from now on. */
  agent: AgentHandle;
  oldPid: number;
  newPid: number;
  oldExitCode: number | null;
  /** Wall-clock ms when the new agent was spawned. */
  spawnedAt: number;
  /** From the spawn: the new agent serving every pod; the old agent's exit. */
  readyMs: number;
  oldExitMs: number;
  /** Wall-clock ms when a hand-over state other than idle was first seen on either agent. */
  handoverSeenAt?: number;
  /** Wall-clock ms when the new agent's hand-over state was first seen `done`. */
  handoverDoneAt?: number;
  /** The last /debug/handover answer of each agent (the old one's: before it left). */
  handover: { old?: HandoverStatus; new?: HandoverStatus };
}

let generation = 0;

/**
 * Each agent of a rolling restart gets its own admin socket: two agents of one node run
 * side by side, and each must stay reachable by the test (the default path would name
 * whichever bound it last, and the old one's exit would remove it).
 */
function successorArgs(old: AgentHandle, args: string[] | undefined): string[] {
  const base = [...(args ?? old.spec?.args ?? [])];
  const at = base.indexOf('--admin-socket');
  if (at >= 0) base.splice(at, 2);
  generation += 1;
  return [...base, '--admin-socket', join(runDirFor(old.instance), `admin-${process.pid}-${generation}.sock`)];
}

function alive(agent: AgentHandle): boolean {
  return agent.child.exitCode === null && agent.child.signalCode === null;
}

export async function rollingRestart(sim: SimFixture, old: AgentHandle, options: RollingRestartOptions = {}): Promise<RollingRestart> {
  if (!old.spec) throw new NodemeshError('ERR_NM_SIM_EXEC', `agent ${old.instance} was not started by the harness: no flags to restart it with`);
  if (!alive(old)) throw new NodemeshError('ERR_NM_SIM_EXEC', `agent ${old.instance} (pid ${old.child.pid}) is not running: nothing to restart`);
  const timeoutMs = options.timeoutMs ?? 90_000;
  const pollMs = options.pollMs ?? 50;
  const pods = options.pods ?? (await old.pods()).filter((p) => p.status === 'enrolled').map((p) => p.key);
  let oldExitedAt = 0;
  const oldExit = once(old.child, 'exit').then(() => { oldExitedAt = Date.now(); });

  const spawnedAt = Date.now();
  const agent = sim.spawnAgent(old.spec.node, successorArgs(old, options.args), old.spec.source, { ca: old.spec.ca });
  const result: RollingRestart = {
    agent, oldPid: old.child.pid!, newPid: agent.child.pid!, oldExitCode: null,
    spawnedAt, readyMs: NaN, oldExitMs: NaN, handover: {},
  };
  const seen = (status: HandoverStatus | undefined, at: number) => {
    if (status && status.state !== 'idle') result.handoverSeenAt ??= at;
  };
  let readyAt = 0;
  const deadline = spawnedAt + timeoutMs;
  const failure = (what: string) => new NodemeshError('ERR_NM_SIM_ROLLING_RESTART', `rolling restart of ${old.instance}: ${what}`, {
    hint: `last hand-over states: old ${JSON.stringify(result.handover.old)}, new ${JSON.stringify(result.handover.new)}\n`
      + `old agent (pid ${result.oldPid}) log:\n${old.log.slice(-2000)}\nnew agent (pid ${result.newPid}) log:\n${agent.log.slice(-2000)}`,
  });

  for (;;) {
    const now = Date.now();
    if (!alive(agent)) throw failure(`the new agent exited with ${agent.child.exitCode ?? agent.child.signalCode} during the restart`);
    // The old agent's view first: it leaves once it has handed everything over.
    if (alive(old)) {
      const status = await old.handover().catch(() => undefined);
      if (status) {
        result.handover.old = status;
        seen(status, now);
      }
    }
    const status = await agent.handover().catch(() => undefined);
    if (status) {
      result.handover.new = status;
      seen(status, now);
      if (status.state === 'done') result.handoverDoneAt ??= now;
      if (status.state === 'failed') throw failure(`the new agent reports the hand-over failed: ${JSON.stringify(status)}`);
    }
    if (!readyAt) {
      const records = await agent.pods().catch(() => undefined);
      if (records && pods.every((key) => records.some((r) => r.key === key && r.status === 'enrolled'))) readyAt = Date.now();
      // A pod the new agent could not capture fails the restart at once (it retries later,
      // but a rollout that leaves a pod uncaptured is already broken).
      const failed = records?.filter((r) => pods.includes(r.key) && r.status === 'failed') ?? [];
      if (failed.length) throw failure(`the new agent failed to capture ${failed.map((r) => `${r.key} (${r.code ?? ''}: ${r.reason ?? ''})`).join(', ')}`);
    }
    if (readyAt && oldExitedAt) break;
    if (Date.now() > deadline) {
      const missing = [!readyAt && `the new agent did not serve ${pods.join(', ')}`, !oldExitedAt && 'the old agent did not exit by itself'].filter(Boolean).join(' and ');
      throw failure(`${missing} within ${timeoutMs} ms`);
    }
    await (oldExitedAt ? sleep(pollMs) : Promise.race([sleep(pollMs), oldExit]));
  }
  await oldExit;
  result.oldExitCode = old.child.exitCode;
  result.readyMs = readyAt - spawnedAt;
  result.oldExitMs = oldExitedAt - spawnedAt;
  return result;
}
