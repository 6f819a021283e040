import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { removePinnedCapture } from '../capture/ebpf/ebpf-capture';
import { getNative } from '../datapath/native';
import { pinDirFor, runDirFor } from './build-agent';

const BPFFS = '/sys/fs/bpf';

/** Removes the pinned capture state and run state of every agent of a simulation. */
export function removeSimAgentState(simName: string, bpffsRoot = BPFFS): string[] {
  const prefix = `sim-${simName}-`;
  const removed: string[] = [];
  const pinRoot = join(bpffsRoot, 'nodemesh');
  if (existsSync(pinRoot)) {
    for (const instance of readdirSync(pinRoot)) {
      if (!instance.startsWith(prefix)) continue;
      removePinnedCapture(getNative(), pinDirFor(bpffsRoot, instance));
      removed.push(pinDirFor(bpffsRoot, instance));
    }
    if (readdirSync(pinRoot).length === 0) rmSync(pinRoot, { recursive: true, force: true });
  }
  if (existsSync('/run/nodemesh')) {
    for (const instance of readdirSync('/run/nodemesh')) {
      if (instance.startsWith(prefix)) rmSync(runDirFor(instance), { recursive: true, force: true });
    }
  }
  return removed;
}

