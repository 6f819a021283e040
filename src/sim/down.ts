import { existsSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { hasCode } from '../errors';
import { logger } from '../log';
import { endCgroupProcesses, requireCgroup2Mount, removeCgroupTree } from './cgroup';
import { CGROUP_DIR, DEFAULT_SIM_NAME, ETC_NETNS_DIR, STATE_ROOT, etcNetnsDir, netnsPrefix, simCgroupRoot, stateDir, validateSimName } from './names';
import { deleteNetns, listNetns } from './netns';
import { tryLoadSimState, withSimLock } from './state';
import { requireRootUser } from './up';

/**
 * `nodemesh sim down`: removes everything the simulation created: what its state file
 * records, and anything else carrying its name (namespaces nmsim-<sim>-*, /etc/netns/
 * nmsim-<sim>-*, the cgroup tree <cgroup2>/nodemesh-sim/<sim>), so that it also cleans
 * up after an `up` that crashed or a state file that was lost. Idempotent.
 */

const log = logger('sim');

export interface SimDownReport {
  netns: string[];
  etcNetns: string[];
  cgroups: string[];
  /** Processes ended because they ran in the sim's cgroups. */
  endedPids: number[];
}

function rmdirIfEmpty(path: string): void {
  try {
    rmdirSync(path);
  } catch (err) {
    if (!hasCode(err, 'ENOENT') && !hasCode(err, 'ENOTEMPTY') && !hasCode(err, 'EBUSY') && !hasCode(err, 'EEXIST')) throw err;
  }
}

export async function simDown(name: string = DEFAULT_SIM_NAME): Promise<SimDownReport> {
  validateSimName(name);
  requireRootUser();
  const report: SimDownReport = { netns: [], etcNetns: [], cgroups: [], endedPids: [] };
  const prefix = netnsPrefix(name);
  await withSimLock(name, async () => {
    const state = tryLoadSimState(name);
    const cgroup2 = state?.cgroup2Mount && existsSync(state.cgroup2Mount) ? state.cgroup2Mount : requireCgroup2Mount();
    const cgroupRoot = simCgroupRoot(cgroup2, name);

    // 1. Processes first: a process inside a pod keeps its namespace alive after its name is gone.
    report.endedPids = await endCgroupProcesses(cgroupRoot);
    if (report.endedPids.length > 0) log.info({ sim: name, pids: report.endedPids }, 'ended processes of the simulation');

    // 2. Namespaces: pods, then nodes, then the fabric (their veths go with them).
    const names = new Set<string>([...(state?.created.netns ?? []), ...(await listNetns()).filter((n) => n.startsWith(prefix))]);
    const order = (n: string): number => (n.startsWith(`${prefix}pod-`) ? 0 : n.startsWith(`${prefix}node-`) ? 1 : 2);
    for (const netns of [...names].sort((a, b) => order(a) - order(b))) {
      if (await deleteNetns(netns)) report.netns.push(netns);
    }

    // 3. /etc/netns/<name> (hosts files).
    const etcDirs = new Set<string>(state?.created.etcNetns ?? []);
    if (existsSync(ETC_NETNS_DIR)) for (const entry of readdirSync(ETC_NETNS_DIR)) if (entry.startsWith(prefix)) etcDirs.add(etcNetnsDir(entry));
    for (const dir of etcDirs) {
      if (!dir.startsWith(`${ETC_NETNS_DIR}/${prefix}`)) continue; // never outside our names
      if (existsSync(dir)) report.etcNetns.push(dir);
      rmSync(dir, { recursive: true, force: true });
    }

    // 4. cgroups: the sim's tree, then shared parents it created if now empty.
    const before = existsSync(cgroupRoot);
    await removeCgroupTree(cgroupRoot);
    if (before) report.cgroups.push(cgroupRoot);
    for (const dir of [...(state?.created.cgroups ?? [])].sort((a, b) => b.length - a.length)) {
      if (dir.startsWith(`${cgroupRoot}/`) || dir === cgroupRoot) continue;
      rmdirIfEmpty(dir);
    }
    rmdirIfEmpty(`${cgroup2}/${CGROUP_DIR}`); // shared by all sims, ours by name
    for (const dir of state?.created.dirs ?? []) if (dir !== STATE_ROOT) rmdirIfEmpty(dir);
  });
  // 5. The state directory (lock included), then /run/nodemesh-sim when no sim is left.
  rmSync(stateDir(name), { recursive: true, force: true });
  rmdirIfEmpty(STATE_ROOT);
  log.info({ sim: name, netns: report.netns.length }, 'simulation removed');
  return report;
}
