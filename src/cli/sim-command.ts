import { removeSimAgentState } from '../agent/agent-state';
import { simCommand as simulatorCommand } from '../sim/cli';
import { DEFAULT_SIM_NAME } from '../sim/names';

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
