import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { getNative } from '../../src/datapath/native';
import { run } from '../../src/util/exec';

/**
 * What tests look for after themselves: namespaces, pinned BPF objects, rules. Each
 * returns what is there, so an assertion shows exactly what leaked.
 */

export function netnsNames(prefix: string): string[] {
  if (!existsSync('/run/netns')) return [];
  return readdirSync('/run/netns').filter((n) => n.startsWith(prefix));
}

/** Pinned instance directories under /sys/fs/bpf/nodemesh whose name starts with prefix. */
export function pinnedPaths(prefix: string, bpffs = '/sys/fs/bpf'): string[] {
  const root = join(bpffs, 'nodemesh');
  if (!existsSync(root)) return [];
  return readdirSync(root).filter((n) => n.startsWith(prefix)).map((n) => join(root, n));
}

export async function iptablesNatRules(netnsPath: string): Promise<string> {
  const out: string[] = [];
  for (const tool of ['iptables-nft-save', 'iptables-legacy-save']) {
    out.push((await run('nsenter', [`--net=${netnsPath}`, '--', tool, '-t', 'nat'])).stdout);
  }
  return out.join('\n');
}

/** pin name → kernel link id, for every link pinned under pinDir/links. */
export async function linkIdsOf(pinDir: string): Promise<Record<string, number>> {
  const bpf = getNative();
  const dir = join(pinDir, 'links');
  const out: Record<string, number> = {};
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir).sort()) {
    const fd = bpf.objGet(join(dir, name));
    try {
      out[name] = bpf.linkInfo(fd).id;
    } finally {
      bpf.close(fd);
    }
  }
  return out;
}
