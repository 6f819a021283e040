import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Logger } from '../log';

/**
 * Gives V8's young generation back to the system while the process is idle.
 *
 * A proxy's start-up and every burst of traffic grow the new space to its maximum (two
 * semi-spaces of --max-semi-space-size, src/proxy/node-flags.ts: 16 MiB), and V8 keeps it
 * resident: it shrinks the new space only in a collection that sees a low allocation rate
 * over the last seconds, and an idle process makes no collections at all. Measured on the
 * 2-core test VM (a process that allocated for 1.5 s, then idle): after 26 s the new space
 * was still 16 MiB; a scavenge once a second shrank it to 1 MiB after the 5th, and RSS
 * fell by 15 MiB.
 *
 * So: once a second, when the process used less than IDLE_CPU of a core in the last
 * interval (no traffic worth the name) and the new space is above TARGET_BYTES, one
 * scavenge (`gc({type: 'minor'})`: the new space is nearly empty when idle, so it takes well
 * under a millisecond); at most MAX_TRIMS per idle period, so that a new space that does not
 * shrink costs nothing more. Any busy interval ends the period. Under load it never runs.
 *
 * The old generation likewise: V8 collects it only when allocation pushes it, so the
 * garbage of a big configuration's parse (YAML documents for 10,000 Pod objects: about
 * 130 MiB at the peak against a live set of 40) stays resident in an agent that then goes
 * idle. The first quiet interval of a period makes one full collection when the old space
 * grew by more than OLD_GROWTH since the last one (a pause of tens of milliseconds at most,
 * taken only when nothing is going on).
 */

/** CPU share of one core below which an interval counts as idle. */
export const IDLE_CPU = 0.02;
/** New space at or below this is left alone (V8's initial size is 1 MiB per semi-space). */
export const TARGET_BYTES = 2 * 1024 * 1024;
/** Scavenges per idle period at most (V8 judges the allocation rate over about 5 s). */
export const MAX_TRIMS = 8;
export const INTERVAL_MS = 1000;
/** Old-space growth since the last full collection that makes an idle period start with one. */
export const OLD_GROWTH = 8 * 1024 * 1024;

export interface TrimmerProbes {
  /** CPU microseconds (user + system) used by the process so far. */
  cpuMicros(): number;
  newSpaceBytes(): number;
  oldSpaceBytes(): number;
  scavenge(): void;
  collect(): void;
}

let exposedGc: ((options?: { type?: 'major' | 'minor' }) => void) | undefined;

/** V8's gc(), exposed in a context of its own (the application's global gets none). */
function v8Gc(): (options?: { type?: 'major' | 'minor' }) => void {
  if (!exposedGc) {
    setFlagsFromString('--expose-gc');
    exposedGc = runInNewContext('gc') as (options?: { type?: 'major' | 'minor' }) => void;
  }
  return exposedGc;
}

export const PROCESS_PROBES: TrimmerProbes = {
  cpuMicros: () => {
    const u = process.cpuUsage();
    return u.user + u.system;
  },
  newSpaceBytes: () => spaceSize('new_space'),
  oldSpaceBytes: () => spaceSize('old_space') + spaceSize('large_object_space'),
  scavenge: () => v8Gc()({ type: 'minor' }),
  collect: () => v8Gc()({ type: 'major' }),
};

function spaceSize(name: string): number {
  return getHeapSpaceStatistics().find((s) => s.space_name === name)?.space_size ?? 0;
}

export class IdleMemoryTrimmer {
  private timer: NodeJS.Timeout | undefined;
  private lastCpu = 0;
  private trims = 0;
  private idleTicks = 0;
  /** The old space after the last full collection made here; none made yet: 0. */
  private oldAfterCollect = 0;
  /** Full collections made, for the tests. */
  collections = 0;
  /** Scavenges made, for the tests and the log. */
  total = 0;

  constructor(
    private readonly log: Logger | undefined,
    private readonly probes: TrimmerProbes = PROCESS_PROBES,
    private readonly intervalMs = INTERVAL_MS,
  ) {}

  start(): void {
    if (this.timer) return;
    this.lastCpu = this.probes.cpuMicros();
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref(); // never what keeps a process alive
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One interval's decision (public for the tests, which drive it without a clock). */
  tick(): void {
    const cpu = this.probes.cpuMicros();
    const used = (cpu - this.lastCpu) / 1000 / this.intervalMs;
    this.lastCpu = cpu;
    if (used >= IDLE_CPU) {
      this.trims = 0; // busy: a new idle period starts with the next quiet interval
      this.idleTicks = 0;
      return;
    }
    this.idleTicks += 1;
    if (this.idleTicks === 1 && this.probes.oldSpaceBytes() > this.oldAfterCollect + OLD_GROWTH) {
      this.probes.collect();
      this.collections += 1;
      this.oldAfterCollect = this.probes.oldSpaceBytes();
      this.log?.debug({ oldSpaceMiB: Math.round(this.oldAfterCollect / 1048576) }, 'idle: old generation collected');
      this.lastCpu = this.probes.cpuMicros();
      return;
    }
    if (this.trims >= MAX_TRIMS) return;
    const before = this.probes.newSpaceBytes();
    if (before <= TARGET_BYTES) return;
    this.probes.scavenge();
    this.trims += 1;
    this.total += 1;
    const after = this.probes.newSpaceBytes();
    if (after < before) this.log?.debug({ newSpaceMiB: Math.round(after / 1048576), trims: this.trims }, 'idle: young generation given back');
    // The scavenge's own CPU is not traffic.
    this.lastCpu = this.probes.cpuMicros();
  }
}
