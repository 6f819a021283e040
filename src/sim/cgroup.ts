import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findCgroup2Mount } from '../datapath/mounts';
import { NodemeshError, hasCode } from '../errors';

/**
 * cgroup v2 directories for the simulator's pods and agents. Only directories: no
 * controller is enabled, so the "no internal processes" rule never gets in the way.
 */

/**
 * The cgroup2 mount point (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts); the
 * simulator cannot run without one, so its absence is an error here rather than undefined.
 */
export function requireCgroup2Mount(mountsText?: string): string {
  const mount = findCgroup2Mount(mountsText);
  if (mount !== undefined) return mount;
  throw new NodemeshError('ERR_NM_CGROUP2_MISSING', 'no cgroup2 filesystem is mounted (none in /proc/self/mounts)', {
    hint: 'mount one: mount -t cgroup2 none /sys/fs/cgroup/unified (hybrid hosts) or boot with systemd.unified_cgroup_hierarchy=1',
  });
}

/**
 * Creates `dir` and any missing parents below `mount`, calling `record` for each
 * directory before it is created.
 */
export function ensureCgroupDir(mount: string, dir: string, record: (path: string) => void): void {
  if (!dir.startsWith(`${mount}/`)) throw new Error(`${dir} is not below the cgroup2 mount ${mount}`);
  const parts = dir.slice(mount.length + 1).split('/');
  let path = mount;
  for (const part of parts) {
    path = `${path}/${part}`;
    if (existsSync(path)) continue;
    record(path);
    try {
      mkdirSync(path);
    } catch (err) {
      if (!hasCode(err, 'EEXIST')) throw err;
    }
  }
}

/** Every cgroup directory in the tree, deepest first. */
export function cgroupTree(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch (err) {
      if (hasCode(err, 'ENOENT')) return;
      throw err;
    }
    for (const e of entries) if (e.isDirectory()) walk(join(dir, e.name));
    out.push(dir);
  };
  walk(root);
  return out;
}

/** Pids in one cgroup directory (not its children). */
export function cgroupProcs(dir: string): number[] {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map(Number);
  } catch (err) {
    if (hasCode(err, 'ENOENT') || hasCode(err, 'ENODEV')) return [];
    throw err;
  }
}

function treeProcs(root: string): number[] {
  return cgroupTree(root).flatMap((dir) => cgroupProcs(dir));
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Ends the processes of a cgroup tree: SIGTERM, then after `graceMs` cgroup.kill (or
 * SIGKILL by pid on kernels before 5.14). Those processes are the simulator's pods'
 * workloads and the node agents: tearing a node down ends them, as it would on a node.
 */
export async function endCgroupProcesses(root: string, graceMs = 2000): Promise<number[]> {
  const initial = treeProcs(root);
  if (initial.length === 0) return [];
  for (const pid of initial) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && treeProcs(root).length > 0) await sleep(50);
  if (treeProcs(root).length > 0) {
    for (const dir of cgroupTree(root)) {
      const killFile = join(dir, 'cgroup.kill');
      if (existsSync(killFile)) {
        try {
          writeFileSync(killFile, '1');
          continue;
        } catch {
          /* fall back to pids */
        }
      }
      for (const pid of cgroupProcs(dir)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
    }
    const killDeadline = Date.now() + 5000;
    while (Date.now() < killDeadline && treeProcs(root).length > 0) await sleep(50);
  }
  return initial;
}

/** Removes a cgroup tree bottom-up; retries briefly while exiting processes leave it. */
export async function removeCgroupTree(root: string): Promise<void> {
  for (const dir of cgroupTree(root)) {
    for (let attempt = 0; ; attempt++) {
      try {
        rmdirSync(dir);
        break;
      } catch (err) {
        if (hasCode(err, 'ENOENT')) break;
        if (hasCode(err, 'EBUSY') && attempt < 50) {
          await sleep(100);
          continue;
        }
        throw new NodemeshError('ERR_NM_SIM_CGROUP_BUSY', `cannot remove cgroup ${dir}: ${(err as Error).message}`, {
          hint: `processes still in it: ${cgroupProcs(dir).join(', ') || 'none listed'}`,
          cause: err,
        });
      }
    }
  }
}
