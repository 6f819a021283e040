import { runDemo } from '../sim/demo';
import { NodemeshError } from '../errors';
import { parseFlags } from './args';

const HELP = `usage: nodemesh demo [--capture auto|ebpf|iptables] [--keep]

Builds a two-node simulated cluster, runs the agent on node1 and shows captured,
direct and inbound connections, then removes everything (unless --keep).`;

export async function demoCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags('demo', argv, {
    capture: { type: 'string', default: 'auto' },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!['auto', 'ebpf', 'iptables'].includes(values.capture!)) throw new NodemeshError('ERR_NM_USAGE', `--capture must be auto, ebpf or iptables`);
  if (process.getuid?.() !== 0) throw new NodemeshError('ERR_NM_USAGE', 'the demo builds network namespaces and loads BPF programs: run it as root');
  return runDemo({ capture: values.capture!, keep: values.keep! });
}
