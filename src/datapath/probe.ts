import { native } from './native';
import { hasCode } from '../errors';
import { assertAbsolutePath, assertString } from './validate';

/** Kernel feature and filesystem probes. */

/** statfs f_type magic numbers (linux/magic.h). */
export const FS_MAGIC = {
  BPF: 0xcafe4a11,
  CGROUP2: 0x63677270,
  NSFS: 0x6e736673,
} as const;

/** libbpf's names of the program types nodemesh uses (any libbpf name is accepted). */
export type ProgTypeName = 'cgroup_sock_addr' | 'sock_ops' | 'cgroup_sockopt' | 'sk_lookup' | 'sk_msg' | (string & {});
/** libbpf's names of the map types nodemesh uses (any libbpf name is accepted). */
export type MapTypeName = 'sockhash' | 'sockmap' | 'lru_hash' | 'lpm_trie' | 'hash' | 'percpu_array' | (string & {});

export function statfsType(path: string): number {
  assertAbsolutePath('path', path);
  return native.statfsType(path);
}

function hasFsType(path: string, magic: number): boolean {
  try {
    return statfsType(path) === magic;
  } catch (err) {
    if (hasCode(err, 'ENOENT')) return false;
    throw err;
  }
}

/** True when `path` is on a bpf filesystem (false when it does not exist). */
export function isBpffs(path: string): boolean {
  return hasFsType(path, FS_MAGIC.BPF);
}

/** True when `path` is in a cgroup v2 hierarchy (false when it does not exist). */
export function isCgroup2(path: string): boolean {
  return hasFsType(path, FS_MAGIC.CGROUP2);
}

/** 1 supported, 0 not, negative errno when the probe itself failed. */
export function probeProgType(progType: ProgTypeName): number {
  assertString('progType', progType);
  return native.probeProgType(progType);
}

/** 1 supported, 0 not, negative errno when the probe itself failed. */
export function probeMapType(mapType: MapTypeName): number {
  assertString('mapType', mapType);
  return native.probeMapType(mapType);
}

/** Number of possible CPUs: the number of slots a per-CPU map value has. */
export function possibleCpus(): number {
  return native.possibleCpus();
}
