import { relative } from 'node:path';
import { ROOT } from '../sim/harness';

/**
 * Reading a V8 .cpuprofile (`node --cpu-prof`): self time per function and per file or
 * package, for bench:proxy's --profile.
 */

export interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
}
export interface CpuProfile {
  startTime: number;
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  name: string;
  where: string;
  selfMs: number;
  share: number;
}

/**
 * Self time per function (by name and location) of a .cpuprofile, counting the samples
 * taken inside `window` (microseconds, the profile's clock) if given; '(idle)' is left out
 * of the shares.
 */
export function selfTimes(profile: CpuProfile, window?: { fromUs: number; toUs: number }): { top: SelfTime[]; byFile: SelfTime[]; busyMs: number; idleMs: number } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  // Sample i was taken at startTime + timeDeltas[0..i]; the time until the next sample is its.
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    if (window && (t < window.fromUs || t > window.toUs)) continue;
    const dt = profile.timeDeltas[i + 1] ?? 0;
    self.set(profile.samples[i]!, (self.get(profile.samples[i]!) ?? 0) + dt);
  }
  const where = (cf: ProfileNode['callFrame']) => {
    if (!cf.url) return '';
    const path = cf.url.startsWith('file://') ? cf.url.slice('file://'.length) : cf.url;
    const shown = path.startsWith(ROOT) ? relative(ROOT, path) : path;
    return `${shown}:${cf.lineNumber + 1}`;
  };
  const file = (cf: ProfileNode['callFrame']) => {
    const w = where(cf);
    if (!w) return cf.functionName || '(anonymous)';
    const path = w.replace(/:\d+$/, '');
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
    return pkg ? `${pkg[1]} (package)` : path;
  };
  const fns = new Map<string, SelfTime>();
  const files = new Map<string, SelfTime>();
  let busy = 0;
  let idle = 0;
  for (const [id, us] of self) {
    const node = byId.get(id);
    if (!node) continue;
    const cf = node.callFrame;
    const name = cf.functionName || '(anonymous)';
    if (name === '(idle)') {
      idle += us;
      continue;
    }
    busy += us;
    const key = `${name}@${where(cf)}`;
    const f = fns.get(key) ?? { name, where: where(cf), selfMs: 0, share: 0 };
    f.selfMs += us / 1000;
    fns.set(key, f);
    const fk = file(cf);
    const g = files.get(fk) ?? { name: fk, where: '', selfMs: 0, share: 0 };
    g.selfMs += us / 1000;
    files.set(fk, g);
  }
  const finish = (m: Map<string, SelfTime>) =>
    [...m.values()].map((s) => ({ ...s, share: s.selfMs / (busy / 1000) })).sort((a, b) => b.selfMs - a.selfMs);
  return { top: finish(fns), byFile: finish(files), busyMs: busy / 1000, idleMs: idle / 1000 };
}
