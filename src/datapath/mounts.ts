import { readFileSync } from 'node:fs';

/**
 * Finding mount points by filesystem type in /proc/self/mounts (cgroup2 is not always at
 * /sys/fs/cgroup, bpffs not always at /sys/fs/bpf: never assume).
 */

export interface MountEntry {
  source: string;
  mountPoint: string;
  fsType: string;
  options: string[];
}

/** /proc/self/mounts escapes space, tab, newline and backslash as octal. */
function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_m, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

export function parseMounts(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 4) continue;
    entries.push({
      source: unescapeMountField(fields[0]!),
      mountPoint: unescapeMountField(fields[1]!),
      fsType: fields[2]!,
      options: fields[3]!.split(','),
    });
  }
  return entries;
}

/** Mount points of `fsType`, in mount order. `mountsText` defaults to /proc/self/mounts. */
export function findMounts(fsType: string, mountsText?: string): string[] {
  const text = mountsText ?? readFileSync('/proc/self/mounts', 'utf8');
  return parseMounts(text)
    .filter((m) => m.fsType === fsType)
    .map((m) => m.mountPoint);
}

/** The first cgroup v2 mount point, or undefined. */
export function findCgroup2Mount(mountsText?: string): string | undefined {
  return findMounts('cgroup2', mountsText)[0];
}

/** The first bpffs mount point, or undefined (prefers /sys/fs/bpf when mounted). */
export function findBpffsMount(mountsText?: string): string | undefined {
  const mounts = findMounts('bpf', mountsText);
  return mounts.includes('/sys/fs/bpf') ? '/sys/fs/bpf' : mounts[0];
}
