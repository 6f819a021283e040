import { native } from './native';
import { assertAbsolutePath } from './validate';

/** cgroup v2 directories for cgroup BPF links. */

/**
 * Opens a cgroup v2 directory (O_RDONLY|O_DIRECTORY|O_CLOEXEC) for BpfLink.create; the
 * caller closes the fd. Throws ERR_NM_NOT_CGROUP2 for a directory outside cgroup v2.
 */
export function openCgroup(path: string): number {
  assertAbsolutePath('path', path);
  return native.cgroupOpen(path);
}

/** The cgroup id (what bpf_get_current_cgroup_id() reports) of a cgroup v2 directory. */
export function cgroupId(path: string): bigint {
  assertAbsolutePath('path', path);
  return native.cgroupId(path);
}
