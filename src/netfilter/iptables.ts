import { run, runStatus } from '../util/exec';
import { NodemeshError } from '../errors';

/**
 * Running iptables inside a network namespace, with the backend (nft or legacy) the node
 * itself uses. Mixing backends on one node leaves two rule sets that both apply and that
 * neither tool shows completely, which is why detection matters (Istio does the same).
 */
export type IptablesBackend = 'nft' | 'legacy';
export type IpFamily = 4 | 6;

export interface BackendChoice {
  backend: IptablesBackend;
  reason: string;
}

function binary(backend: IptablesBackend, family: IpFamily, suffix: '' | '-save' | '-restore'): string {
  return `${family === 6 ? 'ip6tables' : 'iptables'}-${backend}${suffix}`;
}

async function countRules(backend: IptablesBackend): Promise<number | undefined> {
  try {
    const { stdout } = await run(binary(backend, 4, '-save'), []);
    return stdout.split('\n').filter((l) => l.startsWith('-A ')).length;
  } catch {
    return undefined;
  }
}

/**
 * Picks the backend the node uses: the one holding more rules in the node's namespace
 * (kube-proxy and the CNI put theirs there), nft when neither holds any and nft works.
 * NODEMESH_IPTABLES_BACKEND=nft|legacy overrides the choice.
 */
export async function detectIptablesBackend(): Promise<BackendChoice> {
  const forced = process.env.NODEMESH_IPTABLES_BACKEND;
  if (forced === 'nft' || forced === 'legacy') return { backend: forced, reason: `NODEMESH_IPTABLES_BACKEND=${forced}` };
  const [nft, legacy] = await Promise.all([countRules('nft'), countRules('legacy')]);
  if (nft === undefined && legacy === undefined) {
    throw new NodemeshError('ERR_NM_IPTABLES_MISSING', 'neither iptables-nft nor iptables-legacy works on this node', {
      hint: 'install the iptables package (Debian: apt-get install iptables)',
    });
  }
  if (nft === undefined) return { backend: 'legacy', reason: 'iptables-nft does not work here' };
  if (legacy === undefined) return { backend: 'nft', reason: 'iptables-legacy does not work here' };
  if (legacy > nft) return { backend: 'legacy', reason: `the node holds ${legacy} legacy rules and ${nft} nft rules` };
  return { backend: 'nft', reason: nft > 0 ? `the node holds ${nft} nft rules and ${legacy} legacy rules` : 'no rules on the node yet; nft is the default' };
}

/** Runs commands against one network namespace (given by path) with one backend. */
export class Iptables {
  constructor(
    readonly backend: IptablesBackend,
    /** /run/netns/NAME or /proc/PID/ns/net; undefined for the caller's own namespace. */
    readonly netnsPath: string | undefined,
  ) {}

  private argv(file: string, args: string[]): [string, string[]] {
    if (this.netnsPath === undefined) return [file, args];
    return ['nsenter', [`--net=${this.netnsPath}`, '--', file, ...args]];
  }

  /** iptables-save of one table, as text. */
  async save(family: IpFamily, table: string): Promise<string> {
    const [file, args] = this.argv(binary(this.backend, family, '-save'), ['-t', table]);
    return (await run(file, args)).stdout;
  }

  /** iptables-restore --noflush: applies a whole batch atomically per table. */
  async restore(family: IpFamily, rules: string): Promise<void> {
    const [file, args] = this.argv(binary(this.backend, family, '-restore'), ['--noflush', '-w', '5']);
    await run(file, args, { input: rules });
  }

  /** One iptables command; resolves with its exit status (for -C checks). */
  async command(family: IpFamily, args: string[]): Promise<number> {
    const [file, argv] = this.argv(binary(this.backend, family, ''), ['-w', '5', ...args]);
    return (await runStatus(file, argv)).status;
  }
}
