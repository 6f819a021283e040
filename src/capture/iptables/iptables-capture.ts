import { promises as fs } from 'node:fs';
import { NodemeshError, describeError } from '../../errors';
import { logger } from '../../log';
import { runStatus } from '../../util/exec';
import { Iptables, detectIptablesBackend, type IpFamily, type IptablesBackend } from '../../netfilter/iptables';
import {
  OUTPUT_CHAIN,
  currentRules,
  parseNatSave,
  planEnroll,
  planRelease,
  validateCaptureSettings,
  type CurrentRules,
  type EnrollAction,
  type IptablesCaptureSettings,
} from './rules';

/**
 * The iptables capture back-end: nat rules inside each enrolled pod's network namespace
 * (OUTPUT → 127.0.0.1:15001, PREROUTING → :15006), written with the iptables backend the
 * node itself uses. The proxy reads the original destination through conntrack
 * (SO_ORIGINAL_DST). See rules.ts for the exact rule set.
 */

const log = logger('capture-iptables');

/** statfs(2) f_type of nsfs: a live namespace file (/run/netns/NAME, /proc/PID/ns/net). */
const NSFS_MAGIC = 0x6e736673;

/**
 * The caller's own network namespace. For this path the iptables tools run directly,
 * without nsenter: the sidecar's init step runs inside the pod with CAP_NET_ADMIN and
 * CAP_NET_RAW only, and setns() (even into the namespace one is already in) needs
 * CAP_SYS_ADMIN.
 */
export const OWN_NETNS = '/proc/self/ns/net';

function isOwnNetns(netnsPath: string): boolean {
  return netnsPath === OWN_NETNS || netnsPath === '/proc/thread-self/ns/net';
}

/** iptables for a namespace: through nsenter, or directly in the caller's own. */
function iptablesIn(backend: IptablesBackend, netnsPath: string): Iptables {
  return new Iptables(backend, isOwnNetns(netnsPath) ? undefined : netnsPath);
}

export interface IptablesCaptureOptions {
  /** Skip detection and use this backend. */
  backend?: IptablesBackend;
}

/** One family's view of a namespace, for `nodemesh status`. */
export interface FamilyDescription {
  family: IpFamily;
  /** Our rules in the built-in chains (the jumps), in iptables-save form. */
  jumps: string[];
  /** Our chains and their rules, in iptables-save form. */
  chains: Array<{ name: string; rules: string[] }>;
}

export interface IptablesCaptureDescription {
  netnsPath: string;
  backend: IptablesBackend;
  /** False when the namespace is gone (nothing else is filled in then). */
  netnsPresent: boolean;
  enrolled: boolean;
  /** Whether the namespace has an IPv6 stack (the ip6tables half applies only then). */
  ipv6: boolean;
  families: FamilyDescription[];
}

/** What enroll() did (or would do) per family; IPv6 is absent when the namespace has no IPv6. */
export type EnrollOutcome = { 4: EnrollAction; 6?: EnrollAction };

type Ipv6State = { present: false } | { present: true; disabled: boolean };

export class IptablesCapture {
  private readonly locks = new Map<string, Promise<unknown>>();

  private constructor(
    readonly backend: IptablesBackend,
    /** Why this backend: detection result or "given by the caller". */
    readonly backendReason: string,
  ) {}

  /** Detects the node's iptables backend (nft or legacy) unless one is given. */
  static async create(options: IptablesCaptureOptions = {}): Promise<IptablesCapture> {
    if (options.backend !== undefined) {
      if (options.backend !== 'nft' && options.backend !== 'legacy') {
        throw new NodemeshError('ERR_NM_INVALID_CAPTURE_SETTINGS', `unknown iptables backend ${JSON.stringify(options.backend)}`, {
          hint: "use 'nft' or 'legacy'",
        });
      }
      log.info({ backend: options.backend }, 'iptables capture: backend given by the caller');
      return new IptablesCapture(options.backend, 'given by the caller');
    }
    const choice = await detectIptablesBackend();
    log.info({ backend: choice.backend, reason: choice.reason }, 'iptables capture: backend detected');
    return new IptablesCapture(choice.backend, choice.reason);
  }

  /**
   * Installs (or brings up to date) the capture rules in a pod's namespace. Does nothing
   * when the rules are already exactly as wanted; otherwise applies one atomic
   * iptables-restore batch per family (our chains flushed and refilled, jumps fixed).
   */
  async enroll(netnsPath: string, settings: IptablesCaptureSettings): Promise<void> {
    await this.apply(netnsPath, settings, false);
  }

  /** Like enroll(), but returns what it did per family ('unchanged', 'install', 'replace'). */
  async enrollAndReport(netnsPath: string, settings: IptablesCaptureSettings): Promise<EnrollOutcome> {
    return this.apply(netnsPath, settings, false);
  }

  /** What enroll() would do, without changing anything. */
  async plan(netnsPath: string, settings: IptablesCaptureSettings): Promise<EnrollOutcome> {
    return this.apply(netnsPath, settings, true);
  }

  /**
   * Removes the jumps and our chains, leaving the nat table as it was before enroll.
   * A pod that is not enrolled, or whose namespace is gone, is a no-op.
   */
  async release(netnsPath: string): Promise<void> {
    await this.serialized(netnsPath, async () => {
      if ((await netnsState(netnsPath)) !== 'present') {
        log.debug({ netnsPath }, 'release: the namespace is gone, nothing to clean');
        return;
      }
      const ipt = iptablesIn(this.backend, netnsPath);
      try {
        const families: IpFamily[] = [4];
        if ((await this.ipv6State(netnsPath)).present) families.push(6);
        for (const family of families) {
          let saved: string;
          try {
            saved = await ipt.save(family, 'nat');
          } catch (err) {
            if (family === 6) {
              log.debug({ netnsPath, err: describeError(err) }, 'release: ip6tables-save does not work here, nothing to clean for IPv6');
              continue;
            }
            throw err;
          }
          const batch = planRelease(saved);
          if (batch === undefined) continue;
          await this.restore(ipt, family, batch, netnsPath, 'removing');
          log.info({ netnsPath, family, backend: this.backend }, 'released pod from iptables capture');
        }
      } catch (err) {
        if ((await netnsState(netnsPath)) !== 'present') {
          log.debug({ netnsPath }, 'release: the namespace went away meanwhile, nothing to clean');
          return;
        }
        throw err;
      }
    });
  }

  /** True when the IPv4 outbound capture is in place (jump and chain). */
  async isEnrolled(netnsPath: string): Promise<boolean> {
    if ((await netnsState(netnsPath)) !== 'present') return false;
    const saved = await this.trySave(iptablesIn(this.backend, netnsPath), 4);
    return saved !== undefined && enrolledIn(currentRules(parseNatSave(saved)));
  }

  /** The rules nodemesh has in a namespace, per family, for `nodemesh status`. */
  async describe(netnsPath: string): Promise<IptablesCaptureDescription> {
    const description: IptablesCaptureDescription = {
      netnsPath,
      backend: this.backend,
      netnsPresent: false,
      enrolled: false,
      ipv6: false,
      families: [],
    };
    if ((await netnsState(netnsPath)) !== 'present') return description;
    description.netnsPresent = true;
    description.ipv6 = (await this.ipv6State(netnsPath)).present;
    const ipt = iptablesIn(this.backend, netnsPath);
    for (const family of description.ipv6 ? ([4, 6] as const) : ([4] as const)) {
      const saved = await this.trySave(ipt, family);
      if (saved === undefined) continue;
      const have = currentRules(parseNatSave(saved));
      if (family === 4) description.enrolled = enrolledIn(have);
      description.families.push({ family, jumps: have.jumps.map((j) => j.rule), chains: have.chains });
    }
    return description;
  }

  // -------------------------------------------------------------------------------------

  private async apply(netnsPath: string, settings: IptablesCaptureSettings, dryRun: boolean): Promise<EnrollOutcome> {
    validateCaptureSettings(settings); // fail before touching anything
    return this.serialized(netnsPath, async () => {
      await requireNetns(netnsPath);
      const ipt = iptablesIn(this.backend, netnsPath);
      try {
        const outcome: EnrollOutcome = { 4: await this.applyFamily(ipt, 4, settings, netnsPath, dryRun) };
        const v6 = await this.ipv6State(netnsPath);
        if (v6.present) {
          const saved = await this.trySave(ipt, 6);
          if (saved === undefined && v6.disabled) {
            log.warn({ netnsPath, backend: this.backend }, 'IPv6 is disabled in the pod and ip6tables does not work there: IPv6 left uncaptured');
          } else {
            outcome[6] = await this.applyFamily(ipt, 6, settings, netnsPath, dryRun, saved);
          }
        }
        return outcome;
      } catch (err) {
        if ((await netnsState(netnsPath)) !== 'present') throw netnsGone(netnsPath, err);
        throw err;
      }
    });
  }

  private async applyFamily(
    ipt: Iptables,
    family: IpFamily,
    settings: IptablesCaptureSettings,
    netnsPath: string,
    dryRun: boolean,
    alreadySaved?: string,
  ): Promise<EnrollAction> {
    let saved = alreadySaved;
    if (saved === undefined) {
      try {
        saved = await ipt.save(family, 'nat');
      } catch (err) {
        throw new NodemeshError(
          'ERR_NM_CAPTURE_IPTABLES_FAILED',
          `reading the nat table of ${netnsPath} (IPv${family}, ${this.backend}) failed: ${describeError(err)}`,
          { hint: `check that ${family === 6 ? 'ip6tables' : 'iptables'}-${this.backend}-save works in the pod's namespace and that the kernel has the nat table`, cause: err, details: { netnsPath, family, backend: this.backend } },
        );
      }
    }
    const plan = planEnroll(family, settings, saved);
    if (plan.action === 'unchanged' || dryRun) {
      if (!dryRun) log.debug({ netnsPath, family }, 'enroll: rules already in place');
      return plan.action;
    }
    await this.restore(ipt, family, plan.restore!, netnsPath, 'installing');
    log.info({ netnsPath, family, backend: this.backend, action: plan.action, differences: plan.differences }, 'enrolled pod in iptables capture');
    return plan.action;
  }

  private async restore(ipt: Iptables, family: IpFamily, batch: string, netnsPath: string, what: string): Promise<void> {
    try {
      await ipt.restore(family, batch);
    } catch (err) {
      throw new NodemeshError(
        'ERR_NM_CAPTURE_IPTABLES_FAILED',
        `${what} the nodemesh nat rules in ${netnsPath} (IPv${family}, ${this.backend}) failed: ${describeError(err)}`,
        {
          hint: `check that the kernel has nat and REDIRECT support (${this.backend === 'nft' ? 'nft_redir, nft_nat' : 'iptable_nat, xt_REDIRECT'}) and that ${this.backend} is the node's backend; the batch was applied all or nothing`,
          cause: err,
          details: { netnsPath, family, backend: this.backend, batch },
        },
      );
    }
  }

  private async trySave(ipt: Iptables, family: IpFamily): Promise<string | undefined> {
    try {
      return await ipt.save(family, 'nat');
    } catch {
      return undefined;
    }
  }

  /** Whether the namespace has an IPv6 stack, read from its own /proc/sys/net/ipv6. */
  private async ipv6State(netnsPath: string): Promise<Ipv6State> {
    if (isOwnNetns(netnsPath)) {
      try {
        return { present: true, disabled: (await fs.readFile('/proc/sys/net/ipv6/conf/all/disable_ipv6', 'utf8')).trim() === '1' };
      } catch {
        return { present: false };
      }
    }
    const r = await runStatus('nsenter', [`--net=${netnsPath}`, '--', 'cat', '/proc/sys/net/ipv6/conf/all/disable_ipv6']);
    if (r.status !== 0) return { present: false };
    return { present: true, disabled: r.stdout.trim() === '1' };
  }

  /** One operation at a time per namespace: two enrolls racing would both see "missing". */
  private async serialized<T>(netnsPath: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(netnsPath) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(fn);
    this.locks.set(netnsPath, next);
    try {
      return await next;
    } finally {
      if (this.locks.get(netnsPath) === next) this.locks.delete(netnsPath);
    }
  }
}

function enrolledIn(have: CurrentRules): boolean {
  return have.chains.some((c) => c.name === OUTPUT_CHAIN) && have.jumps.some((j) => j.chain === 'OUTPUT' && j.rule.includes(`-j ${OUTPUT_CHAIN}`));
}

/** 'present' for a live namespace file; 'missing' when the path is gone; 'stale' when it is not an nsfs file. */
async function netnsState(netnsPath: string): Promise<'present' | 'missing' | 'stale'> {
  try {
    const st = await fs.statfs(netnsPath);
    return st.type === NSFS_MAGIC ? 'present' : 'stale';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ESRCH') return 'missing';
    throw err;
  }
}

function netnsGone(netnsPath: string, cause?: unknown): NodemeshError {
  return new NodemeshError('ERR_NM_POD_NETNS_GONE', `the pod network namespace ${netnsPath} does not exist (any more)`, {
    hint: 'the pod may have been deleted; nothing to capture',
    cause,
    details: { netnsPath },
  });
}

async function requireNetns(netnsPath: string): Promise<void> {
  const state = await netnsState(netnsPath);
  if (state === 'missing') throw netnsGone(netnsPath);
  if (state === 'stale') {
    throw new NodemeshError('ERR_NM_POD_NETNS_GONE', `${netnsPath} exists but is not a network namespace (its nsfs mount is gone)`, {
      hint: 'the pod may have been deleted and its namespace file left behind; nothing to capture',
      details: { netnsPath },
    });
  }
}
