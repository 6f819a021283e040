import { existsSync } from 'node:fs';
import { NodemeshError } from '../errors';
import { run, runStatus } from '../util/exec';
import { netnsPath } from './names';

/**
 * iproute2 and sysctl inside named network namespaces. Every command names its namespace
 * (`ip -n NS`, `nsenter --net=/run/netns/NS`): the simulator never changes anything in
 * the namespace it runs in.
 */

/** `ip -n NS args...` */
export async function ipIn(netns: string, args: string[]): Promise<string> {
  return (await run('ip', ['-n', netns, ...args])).stdout;
}

export async function ipInStatus(netns: string, args: string[]): Promise<number> {
  return (await runStatus('ip', ['-n', netns, ...args])).status;
}

/** JSON output of `ip -j -n NS args...` ([] when empty). */
export async function ipJson<T = Record<string, unknown>>(netns: string | undefined, args: string[]): Promise<T[]> {
  const argv = netns === undefined ? ['-j', ...args] : ['-j', '-n', netns, ...args];
  const { stdout } = await run('ip', argv);
  const text = stdout.trim();
  return text === '' ? [] : (JSON.parse(text) as T[]);
}

/** Names from `ip netns list`. */
export async function listNetns(): Promise<string[]> {
  const entries = await ipJson<{ name: string }>(undefined, ['netns', 'list']);
  return entries.map((e) => e.name);
}

/** True when /run/netns/NAME exists and can be entered. */
export async function netnsUsable(name: string): Promise<boolean> {
  if (!existsSync(netnsPath(name))) return false;
  return (await ipInStatus(name, ['link', 'show', 'lo'])) === 0;
}

/**
 * Creates a named namespace unless a usable one exists (a leftover file from a crash
 * in the middle of `ip netns add` is removed first). Returns true when it was created.
 */
export async function ensureNetns(name: string, record: (name: string) => void): Promise<boolean> {
  if (await netnsUsable(name)) return false;
  record(name);
  if (existsSync(netnsPath(name))) await runStatus('ip', ['netns', 'delete', name]);
  await run('ip', ['netns', 'add', name]);
  await ipIn(name, ['link', 'set', 'lo', 'up']);
  return true;
}

/** Deletes a named namespace; true when it existed. */
export async function deleteNetns(name: string): Promise<boolean> {
  if (!existsSync(netnsPath(name))) return false;
  const result = await runStatus('ip', ['netns', 'delete', name]);
  if (result.status !== 0 && existsSync(netnsPath(name))) {
    throw new NodemeshError('ERR_NM_SIM_NETNS', `cannot delete network namespace ${name}: ${result.stderr.trim()}`, {
      hint: `try \`ip netns delete ${name}\` by hand`,
    });
  }
  return true;
}

export async function linkExists(netns: string, dev: string): Promise<boolean> {
  return (await ipInStatus(netns, ['link', 'show', 'dev', dev])) === 0;
}

/**
 * Sets sysctls inside a namespace (net.* sysctls are per namespace: the writer's
 * namespace decides which copy changes). A missing key fails with a hint.
 */
export async function sysctlIn(netns: string, settings: Record<string, string | number>, hints: Record<string, string> = {}): Promise<void> {
  const assignments = Object.entries(settings).map(([k, v]) => `${k}=${v}`);
  try {
    await run('nsenter', [`--net=${netnsPath(netns)}`, '--', 'sysctl', '-q', '-w', ...assignments]);
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err);
    const missing = Object.keys(settings).find((k) => text.includes(k.replace(/\./g, '/')) || text.includes(k));
    throw new NodemeshError('ERR_NM_SIM_SYSCTL', `setting ${assignments.join(' ')} in network namespace ${netns} failed: ${text}`, {
      hint: (missing !== undefined ? hints[missing] : undefined) ?? 'check that the kernel has the feature (sysctl -a | grep KEY)',
      cause: err,
    });
  }
}
