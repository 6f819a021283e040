import { runDemo } from '../sim/demo';
import { NodemeshError } from '../errors';
import { parseFlags } from './args';

const HELP = `usage: nodemesh demo [--capture auto|ebpf|iptables] [--keep] [--no-bench]

Builds a two-node simulated cluster with a small application (deploy/examples/sim/demo:
a frontend calling reviews v1/v2 and ratings), runs one agent per node and shows the mesh
at work: (a) a 90/10 canary, (b) retries and outlier ejection, (c) SPIFFE identities and
STRICT mTLS, (d) an authorization denial and \`nodemesh authz check\`, (e) Istio's metrics,
(f) \`nodemesh bench\`: direct vs nodemesh sidecar vs ambient vs Envoy sidecars.
Then removes everything; --keep leaves it running until Ctrl-C, for exploring.
  --no-bench   leave out step (f)`;

export async function demoCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags('demo', argv, {
    capture: { type: 'string', default: 'auto' },
    keep: { type: 'boolean', default: false },
    'no-bench': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!['auto', 'ebpf', 'iptables'].includes(values.capture!)) throw new NodemeshError('ERR_NM_USAGE', `--capture must be auto, ebpf or iptables`);
  if (process.getuid?.() !== 0) throw new NodemeshError('ERR_NM_USAGE', 'the demo builds network namespaces and loads BPF programs: run it as root');
  try {
    await runDemo({ capture: values.capture!, keep: values.keep!, skipBench: values['no-bench']! });
  } catch (err) {
    // Ctrl-C: the demo has cleaned up and said so; the shell's convention for SIGINT.
    if ((err as { code?: string }).code === 'ERR_NM_INTERRUPTED') return 130;
    throw err;
  }
  return 0;
}
