import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { relative, resolve, isAbsolute } from 'node:path';
import { findCgroup2Mount } from '../datapath/mounts';
import type { NativeBinding } from '../datapath/native-binding';
import { describeError } from '../errors';
import { detectIptablesBackend, type IptablesBackend } from '../netfilter/iptables';
import type { CaptureKind } from './backend';

export const CGROUP2_SUPER_MAGIC = 0x63677270;
export const BPF_FS_MAGIC = 0xcafe4a11;

/** The kernel the eBPF back-end needs: bpf_get_netns_cookie in sockops and sk_msg. */
export const MIN_KERNEL_FOR_EBPF: [number, number] = [5, 15];

export interface ProbeResult {
  name: string;
  ok: boolean;
  detail: string;
  /** Which back-end needs this probe to pass. */
  neededBy: CaptureKind;
}

export interface DoctorReport {
  probes: ProbeResult[];
  choice: CaptureKind | 'none';
  reason: string;
  iptablesBackend?: IptablesBackend;
}

export interface DoctorOptions {
  /** The cgroup the eBPF programs would attach to. */
  cgroupPath: string;
  /** The BPF filesystem root. */
  bpffsRoot: string;
  /** Whether the agent's own cgroup must sit below cgroupPath (true for the agent). */
  checkAgentCgroup?: boolean;
}

/** This process's cgroup v2 directory (the `0::/path` line of /proc/self/cgroup). */
export function ownCgroup2Path(mountPoint: string, procCgroup = readFileSync('/proc/self/cgroup', 'utf8')): string | undefined {
  const line = procCgroup.split('\n').find((l) => l.startsWith('0::'));
  return line ? resolve(mountPoint, `.${line.slice(3)}`) : undefined;
}

export function isBelow(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

function kernelAtLeast(text: string, [major, minor]: [number, number]): boolean {
  const m = /^(\d+)\.(\d+)/.exec(text);
  if (!m) return false;
  const [a, b] = [Number(m[1]), Number(m[2])];
  return a > major || (a === major && b >= minor);
}

function probe(name: string, neededBy: CaptureKind, fn: () => string): ProbeResult {
  try {
    return { name, ok: true, detail: fn(), neededBy };
  } catch (err) {
    return { name, ok: false, detail: describeError(err), neededBy };
  }
}

/**
 * Probes the node for what each capture back-end needs and picks one: eBPF where every
 * eBPF probe passes, iptables otherwise, with the reason.
 */
export async function runDoctor(bpf: NativeBinding | undefined, options: DoctorOptions, prefer: 'auto' | CaptureKind = 'auto'): Promise<DoctorReport> {
  const probes: ProbeResult[] = [];
  const kernel = release();
  probes.push(probe('kernel version', 'ebpf', () => {
    if (!kernelAtLeast(kernel, MIN_KERNEL_FOR_EBPF)) throw new Error(`kernel ${kernel} is older than ${MIN_KERNEL_FOR_EBPF.join('.')}`);
    return kernel;
  }));
  probes.push(probe('native addon', 'ebpf', () => {
    if (!bpf) throw new Error('the native addon is not loaded (run `npm run build`)');
    return 'loaded';
  }));
  if (bpf) {
    probes.push(probe('BPF syscall', 'ebpf', () => {
      const r = bpf.probeMapType('hash');
      if (r !== 1) throw new Error(`bpf(BPF_MAP_CREATE) failed (${r}); is the agent privileged (CAP_BPF, CAP_SYS_ADMIN)?`);
      return 'available';
    }));
    const progTypes: Array<[string, string]> = [
      ['cgroup_sock_addr', 'cgroup connect4/connect6'],
      ['sock_ops', 'sockops'],
      ['cgroup_sockopt', 'cgroup getsockopt'],
      ['sk_lookup', 'sk_lookup (5.9+)'],
      ['sk_msg', 'sk_msg'],
    ];
    for (const [type, what] of progTypes) {
      probes.push(probe(`program type ${what}`, 'ebpf', () => {
        if (bpf.probeProgType(type) !== 1) throw new Error(`the kernel does not support BPF_PROG_TYPE_${type.toUpperCase()}`);
        return 'supported';
      }));
    }
    for (const type of ['sockhash', 'lru_hash', 'lpm_trie']) {
      probes.push(probe(`map type ${type}`, 'ebpf', () => {
        if (bpf.probeMapType(type) !== 1) throw new Error(`the kernel does not support BPF_MAP_TYPE_${type.toUpperCase()}`);
        return 'supported';
      }));
    }
    probes.push(probe('cgroup v2 at the capture cgroup', 'ebpf', () => {
      const type = bpf.statfsType(options.cgroupPath);
      if (type !== CGROUP2_SUPER_MAGIC) {
        throw new Error(`${options.cgroupPath} is not on cgroup v2 (filesystem type 0x${type.toString(16)}); cgroup2 is mounted at ${findCgroup2Mount() ?? 'no mount point'}`);
      }
      return options.cgroupPath;
    }));
    probes.push(probe('BPF filesystem', 'ebpf', () => {
      const type = bpf.statfsType(options.bpffsRoot);
      if (type !== BPF_FS_MAGIC) throw new Error(`${options.bpffsRoot} is not a BPF filesystem (mount -t bpf bpf ${options.bpffsRoot})`);
      return options.bpffsRoot;
    }));
    if (options.checkAgentCgroup) {
      probes.push(probe("agent's cgroup below the capture cgroup", 'ebpf', () => {
        const mount = findCgroup2Mount();
        const own = mount ? ownCgroup2Path(mount) : undefined;
        if (!own || !isBelow(own, options.cgroupPath)) {
          throw new Error(`the agent runs in ${own ?? 'an unknown cgroup'}, outside ${options.cgroupPath}: the getsockopt program would not answer SO_ORIGINAL_DST for its sockets`);
        }
        return own;
      }));
    }
  }
  let iptablesBackend: IptablesBackend | undefined;
  try {
    const choice = await detectIptablesBackend();
    iptablesBackend = choice.backend;
    probes.push({ name: 'iptables backend', ok: true, detail: `${choice.backend} (${choice.reason})`, neededBy: 'iptables' });
  } catch (err) {
    probes.push({ name: 'iptables backend', ok: false, detail: describeError(err), neededBy: 'iptables' });
  }

  const failed = (kind: CaptureKind) => probes.filter((p) => p.neededBy === kind && !p.ok);
  const ebpfFailed = failed('ebpf');
  const iptFailed = failed('iptables');
  const why = (list: ProbeResult[]) => list.map((p) => `${p.name}: ${p.detail}`).join('; ');
  let choice: DoctorReport['choice'];
  let reason: string;
  if (prefer === 'ebpf') {
    choice = ebpfFailed.length === 0 ? 'ebpf' : 'none';
    reason = ebpfFailed.length === 0 ? 'eBPF requested and every eBPF probe passed' : `eBPF requested but ${why(ebpfFailed)}`;
  } else if (prefer === 'iptables') {
    choice = iptFailed.length === 0 ? 'iptables' : 'none';
    reason = iptFailed.length === 0 ? 'iptables requested' : `iptables requested but ${why(iptFailed)}`;
  } else if (ebpfFailed.length === 0) {
    choice = 'ebpf';
    reason = 'every eBPF probe passed';
  } else if (iptFailed.length === 0) {
    choice = 'iptables';
    reason = `falling back to iptables because ${why(ebpfFailed)}`;
  } else {
    choice = 'none';
    reason = `no capture back-end works: ${why([...ebpfFailed, ...iptFailed])}`;
  }
  return { probes, choice, reason, ...(iptablesBackend ? { iptablesBackend } : {}) };
}

export function formatDoctorReport(report: DoctorReport): string {
  const lines = report.probes.map((p) => `${p.ok ? 'ok  ' : 'FAIL'}  ${p.name.padEnd(40)} ${p.detail}  [${p.neededBy}]`);
  lines.push('', `capture back-end: ${report.choice} (${report.reason})`);
  return lines.join('\n');
}
