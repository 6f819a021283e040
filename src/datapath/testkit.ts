import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readlinkSync, rmdirSync } from 'node:fs';
import * as path from 'node:path';
import { run } from '../util/exec';
import { findCgroup2Mount } from './mounts';
import { isBpffs } from './probe';

/**
 * Helpers for this folder's root-only tests (not used by the agent): throwaway network
 * namespaces, cgroups and bpffs directories, each with a remove() that tolerates being
 * called twice. Names start with nmtest-addon- so that leftovers are easy to spot.
 */

export function uniqueName(prefix = 'nmtest-addon'): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/** The calling thread's network namespace, as readlink shows it ('net:[4026531840]'). */
export function threadNetns(): string {
  return readlinkSync('/proc/thread-self/ns/net');
}

export interface TestNetns {
  name: string;
  path: string;
  /** Runs `ip -n NAME ...`. */
  ip(...args: string[]): Promise<void>;
  /** Runs a command inside the namespace (nsenter --net). */
  exec(file: string, ...args: string[]): Promise<string>;
  remove(): Promise<void>;
}

/** `ip netns add nmtest-addon-<random>` with loopback up. */
export async function createTestNetns(): Promise<TestNetns> {
  const name = uniqueName();
  await run('ip', ['netns', 'add', name]);
  let removed = false;
  const ns: TestNetns = {
    name,
    path: `/run/netns/${name}`,
    ip: async (...args) => {
      await run('ip', ['-n', name, ...args]);
    },
    exec: async (file, ...args) => (await run('nsenter', [`--net=/run/netns/${name}`, '--', file, ...args])).stdout,
    remove: async () => {
      if (removed) return;
      removed = true;
      await run('ip', ['netns', 'del', name]);
    },
  };
  try {
    await ns.ip('link', 'set', 'lo', 'up');
  } catch (err) {
    await ns.remove();
    throw err;
  }
  return ns;
}

/** A bpffs mount: /sys/fs/bpf, mounted there first when it is not bpffs yet. */
export async function ensureBpffs(): Promise<string> {
  const dir = '/sys/fs/bpf';
  if (isBpffs(dir)) return dir;
  mkdirSync(dir, { recursive: true });
  try {
    await run('mount', ['-t', 'bpf', 'bpf', dir]);
  } catch (err) {
    if (!isBpffs(dir)) throw err; // someone else mounted it meanwhile: fine
  }
  return dir;
}

/** A fresh cgroup v2 directory under the machine's cgroup2 mount (found, not assumed). */
export function createTestCgroup(): { path: string; remove(): Promise<void> } {
  const root = findCgroup2Mount();
  if (root === undefined) throw new Error('no cgroup2 mount in /proc/self/mounts');
  const dir = path.join(root, uniqueName());
  mkdirSync(dir);
  return {
    path: dir,
    // A just-exited member can keep the cgroup busy for a moment: retry EBUSY.
    remove: async () => {
      for (let attempt = 0; ; attempt++) {
        if (!existsSync(dir)) return;
        try {
          rmdirSync(dir);
          return;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EBUSY' || attempt >= 50) throw err;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    },
  };
}

/** The package root (holding native/test), from src/datapath or dist/src/datapath. */
export function packageRoot(): string {
  for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'native', 'test', 'fixture.bpf.c'))) return dir;
  }
  throw new Error(`package root with native/test/fixture.bpf.c not found above ${__dirname}`);
}

/** Whether clang is installed (the BPF tests compile their fixtures with it). */
export async function hasClang(): Promise<boolean> {
  try {
    await run('clang', ['--version']);
    return true;
  } catch {
    return false;
  }
}

/** Compiles native/test/<name>.bpf.c to <outDir>/<name>.bpf.o, like ebpf/Makefile does. */
export async function compileBpfFixture(name: string, outDir: string): Promise<string> {
  let multiarch = '';
  try {
    multiarch = (await run('gcc', ['-print-multiarch'])).stdout.trim();
  } catch {
    multiarch = `${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu`;
  }
  const source = path.join(packageRoot(), 'native', 'test', `${name}.bpf.c`);
  const output = path.join(outDir, `${name}.bpf.o`);
  await run('clang', ['-O2', '-g', '-Wall', '-target', 'bpf', `-I/usr/include/${multiarch}`, '-c', source, '-o', output]);
  return output;
}

/**
 * Cleanups run in reverse order of registration (node:test runs t.after hooks in
 * registration order), every one of them even when some fail.
 */
export function cleanupStack(t: { after(fn: () => unknown): void }): (fn: () => unknown) => void {
  const cleanups: (() => unknown)[] = [];
  t.after(async () => {
    const errors: unknown[] = [];
    while (cleanups.length > 0) {
      const cleanup = cleanups.pop()!;
      try {
        await cleanup();
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, `${errors.length} test cleanups failed`);
  });
  return (fn) => {
    cleanups.push(fn);
  };
}
