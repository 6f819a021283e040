import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { NodemeshError } from '../errors';
import { podKey, type PodInfo } from '../mesh/model';
import type { PodLocation, PodLocator } from './pod-locator';

/**
 * Finds a pod's network namespace on a node from its processes: kubelet puts every
 * container of a pod in a cgroup whose path carries the pod UID (`pod<uid>` with the
 * cgroupfs driver, `pod<uid_with_underscores>` with systemd), and all of them, the
 * sandbox first, share the pod's network namespace. The lowest such pid (normally the
 * sandbox's pause process) gives /proc/<pid>/ns/net.
 *
 * procRoot is the host's /proc (mounted at /host/proc in the agent's pod).
 */
export class ProcPodLocator implements PodLocator {
  constructor(private readonly procRoot = '/proc') {}

  async locate(pod: PodInfo): Promise<PodLocation> {
    const pid = findPodPid(this.procRoot, pod.uid);
    if (pid === undefined) {
      throw new NodemeshError('ERR_NM_POD_NOT_FOUND', `no process of pod ${podKey(pod)} (uid ${pod.uid}) runs on this node yet`, {
        hint: 'its sandbox may still be starting; the agent tries again',
      });
    }
    return { netnsPath: join(this.procRoot, String(pid), 'ns', 'net') };
  }
}

/** The pod UID as it appears in cgroup paths: dashes (cgroupfs) or underscores (systemd). */
export function uidPatterns(uid: string): string[] {
  return [`pod${uid}`, `pod${uid.replace(/-/g, '_')}`];
}

/** The lowest pid whose cgroup path names the pod UID, or undefined. */
export function findPodPid(procRoot: string, uid: string): number | undefined {
  const patterns = uidPatterns(uid);
  let best: number | undefined;
  for (const entry of readdirSync(procRoot)) {
    const c = entry.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const pid = Number(entry);
    if (best !== undefined && pid >= best) continue;
    let text: string;
    try {
      text = readFileSync(join(procRoot, entry, 'cgroup'), 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    if (patterns.some((p) => text.includes(p))) best = pid;
  }
  return best;
}
