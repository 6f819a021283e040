import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { removePinnedCapture } from '../capture/ebpf/ebpf-capture';
import { pinDirFor, runDirFor } from '../agent/build-agent';
import { getNative } from '../datapath/native';
import { simCommand as simulatorCommand } from '../sim/cli';
import { DEFAULT_SIM_NAME } from '../sim/names';

const BPFFS = '/sys/fs/bpf';

/** Removes the pinned capture state and run state of every agent of a simulation. */
export function removeSimAgentState(simName: string, bpffsRoot = BPFFS): string[] {
  const prefix = `sim-${simName}-`;
  const removed: string[] = [];
  const pinRoot = join(bpffsRoot, 'nodemesh');
  if (existsSync(pinRoot)) {
    for (const instance of readdirSync(pinRoot)) {
      if (!instance.startsWith(prefix)) continue;
      removePinnedCapture(getNative(), pinDirFor(bpffsRoot, instance));
      removed.push(pinDirFor(bpffsRoot, instance));
    }
    if (readdirSync(pinRoot).length === 0) rmSync(pinRoot, { recursive: true, force: true });
  }
  if (existsSync('/run/nodemesh')) {
    for (const instance of readdirSync('/run/nodemesh')) {
      if (instance.startsWith(prefix)) rmSync(runDirFor(instance), { recursive: true, force: true });
    }
  }
  return removed;
}

function simNameOf(argv: string[]): string {
  const i = argv.indexOf('--name');
  if (i >= 0 && argv[i + 1]) return argv[i + 1]!;
  const eq = argv.find((a) => a.startsWith('--name='));
  return eq ? eq.slice('--name='.length) : DEFAULT_SIM_NAME;
}

/**
 * `nodemesh sim …`: the simulator's own command, plus, on `down`, the agents' capture state
 * (pinned links are detached before the simulator removes the cgroups they hang on).
 */
export async function simCommand(argv: string[]): Promise<number> {
  const args = argv[0] === 'sim' ? argv.slice(1) : argv;
  if (args[0] === 'down' && !args.includes('--help')) {
    const name = simNameOf(args);
    removeSimAgentState(name);
    const code = await simulatorCommand(args);
    removeSimAgentState(name);
    return code;
  }
  return simulatorCommand(args);
}
