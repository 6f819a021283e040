import { loadNative } from '../datapath/native';
import { runDoctor, formatDoctorReport } from '../capture/doctor';
import { findCgroup2Mount } from '../datapath/mounts';
import type { NativeBinding } from '../datapath/native-binding';
import { describeError } from '../errors';
import { parseFlags } from './args';

const HELP = `usage: nodemesh doctor [--cgroup PATH] [--bpffs PATH] [--json]

Probes the kernel (version, BPF syscall, program and map types, cgroup v2, BPF filesystem)
and iptables (nft or legacy), then says which capture back-end the agent would use and why.
  --cgroup PATH   the cgroup v2 directory the agent would attach to (default: the cgroup2 mount)
  --bpffs PATH    the BPF filesystem (default /sys/fs/bpf)
  --json          machine-readable output`;

export async function doctorCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags('doctor', argv, {
    cgroup: { type: 'string' },
    bpffs: { type: 'string', default: '/sys/fs/bpf' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  let bpf: NativeBinding | undefined;
  let addonError: string | undefined;
  try {
    bpf = loadNative();
  } catch (err) {
    addonError = describeError(err);
  }
  const cgroupPath = values.cgroup ?? findCgroup2Mount() ?? '/sys/fs/cgroup';
  const report = await runDoctor(bpf, { cgroupPath, bpffsRoot: values.bpffs! });
  if (addonError) report.probes.find((p) => p.name === 'native addon')!.detail = addonError;
  console.log(values.json ? JSON.stringify(report, null, 2) : formatDoctorReport(report));
  return report.choice === 'none' ? 1 : 0;
}
