import { isIPv4, isIPv6 } from 'node:net';
import { NodemeshError } from '../../errors';
import type { IpFamily } from '../../netfilter/iptables';
import type { CaptureSettings } from '../settings';

/**
 * The in-pod nat rule set of the iptables capture back-end, as pure functions: settings in,
 * iptables-restore text out, and the plans that move a namespace's saved nat table to the
 * wanted state (or back to what it was before nodemesh). Nothing here runs a command.
 *
 * Every rule is written exactly the way iptables-save prints it (`-p tcp -m tcp --dport`,
 * host bits masked off CIDRs, IPv6 in inet_ntop form, `/0` printed as no address at all),
 * for both the nft and the legacy backend. That is what lets enroll() compare the saved
 * chains with the rendered ones line by line and do nothing when they already match.
 */

export const OUTPUT_CHAIN = 'NODEMESH_OUTPUT';
export const PREROUTING_CHAIN = 'NODEMESH_PREROUTING';
export const OUR_CHAINS: readonly string[] = [OUTPUT_CHAIN, PREROUTING_CHAIN];
/** Every nodemesh rule carries `-m comment --comment nodemesh`. */
export const RULE_TAG = 'nodemesh';

/* Constants from ebpf/nodemesh.h. */
export const PORT_OUTBOUND = 15001;
export const PORT_INBOUND = 15006;
export const PORT_TUNNEL = 15008;
export const PORT_PROBE = 15009;
export const PORT_ADMIN = 15020;
export const PORT_HEALTH = 15021;
export const PROXY_MARK = 0x4e4d;
/** The source the inbound path connects to the app from; capture always skips it. */
export const INBOUND_PASSTHROUGH_IP4 = '127.0.0.6';
/** IPv6 counterpart of 127.0.0.6 (Istio uses the same address). */
export const INBOUND_PASSTHROUGH_IP6 = '::6';

/**
 * The capture settings this back-end reads: every field of CaptureSettings (see
 * ../settings.ts for what each means) but the eBPF-only accelerator switch, plus
 * `excludeUid`: outbound connections of processes running as this uid are never
 * redirected (`-m owner --uid-owner UID -j RETURN`). Sidecar mode needs it: its proxy runs
 * as uid 1337 without CAP_NET_ADMIN, so it cannot set the mark on its sockets.
 */
export type IptablesCaptureSettings = Omit<CaptureSettings, 'skMsg'> & { excludeUid?: number };

export const DEFAULT_IPTABLES_CAPTURE_SETTINGS: Readonly<IptablesCaptureSettings> = Object.freeze({
  outboundPort: PORT_OUTBOUND,
  inboundPort: PORT_INBOUND,
  tunnelPort: PORT_TUNNEL,
  probePort: PORT_PROBE,
  proxyMark: PROXY_MARK,
  excludeOutboundPorts: [],
  excludeInboundPorts: [],
  excludeOutboundCIDRs: [],
  captureInbound: true,
});

/** The defaults with some fields replaced. */
export function iptablesCaptureSettings(overrides: Partial<IptablesCaptureSettings> = {}): IptablesCaptureSettings {
  return { ...DEFAULT_IPTABLES_CAPTURE_SETTINGS, excludeOutboundPorts: [], excludeInboundPorts: [], excludeOutboundCIDRs: [], ...overrides };
}

/** Settings after validation: ports de-duplicated, CIDRs canonical and split by family. */
export type ValidatedSettings = Omit<IptablesCaptureSettings, 'excludeOutboundCIDRs' | 'excludeUid'> & {
  /** Undefined: no uid is excluded. */
  excludeUid: number | undefined;
  /** Canonical `address/prefix`, as iptables-save prints it. */
  excludeOutboundCIDRs: { 4: string[]; 6: string[] };
};

// ---------------------------------------------------------------------------------------
// Validation

function invalid(problems: string[], value: unknown): NodemeshError {
  return new NodemeshError('ERR_NM_INVALID_CAPTURE_SETTINGS', `invalid iptables capture settings: ${problems.join('; ')}`, {
    hint: 'fix the capture settings (ports are integers 1-65535, CIDRs look like 10.0.0.0/8 or fd00::/8)',
    details: { problems, settings: value },
  });
}

function show(v: unknown): string {
  try {
    return typeof v === 'string' ? JSON.stringify(v) : String(JSON.stringify(v) ?? v);
  } catch {
    return String(v);
  }
}

function isPort(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535;
}

const IPV4_OCTET = /^(0|[1-9][0-9]{0,2})$/;

function parseIPv4(text: string): number[] | undefined {
  if (!isIPv4(text)) return undefined;
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => IPV4_OCTET.test(p) && Number(p) <= 255)) return undefined;
  return parts.map(Number);
}

/** Eight 16-bit words, or undefined. Zone ids (fe80::1%eth0) are refused. */
function parseIPv6(text: string): number[] | undefined {
  if (!isIPv6(text) || text.includes('%')) return undefined;
  let head = text;
  let tailV4: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    const v4 = parseIPv4(text.slice(lastColon + 1));
    if (!v4) return undefined;
    tailV4 = [(v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!];
    head = text.slice(0, lastColon + 1);
    if (head.endsWith(':') && !head.endsWith('::')) head = head.slice(0, -1);
  }
  const words = (s: string): number[] => (s === '' ? [] : s.split(':').map((w) => parseInt(w, 16)));
  const room = 8 - tailV4.length;
  let out: number[];
  const gap = head.indexOf('::');
  if (gap >= 0) {
    const left = words(head.slice(0, gap));
    const right = words(head.slice(gap + 2));
    const zeros = room - left.length - right.length;
    if (zeros < 1) return undefined;
    out = [...left, ...new Array<number>(zeros).fill(0), ...right];
  } else {
    out = words(head);
    if (out.length !== room) return undefined;
  }
  out = [...out, ...tailV4];
  if (out.length !== 8 || out.some((w) => !Number.isInteger(w) || w < 0 || w > 0xffff)) return undefined;
  return out;
}

/** IPv6 text the way glibc's inet_ntop (and so ip6tables-save) prints it. */
export function formatIPv6(words: readonly number[]): string {
  let best = { base: -1, len: 0 };
  let cur = { base: -1, len: 0 };
  for (let i = 0; i < 8; i++) {
    if (words[i] === 0) {
      if (cur.base === -1) cur = { base: i, len: 1 };
      else cur.len++;
    } else if (cur.base !== -1) {
      if (best.base === -1 || cur.len > best.len) best = cur;
      cur = { base: -1, len: 0 };
    }
  }
  if (cur.base !== -1 && (best.base === -1 || cur.len > best.len)) best = cur;
  if (best.base !== -1 && best.len < 2) best = { base: -1, len: 0 };
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (best.base !== -1 && i >= best.base && i < best.base + best.len) {
      if (i === best.base) out += ':';
      continue;
    }
    if (i !== 0) out += ':';
    if (i === 6 && best.base === 0 && (best.len === 6 || (best.len === 5 && words[5] === 0xffff))) {
      out += `${words[6]! >> 8}.${words[6]! & 0xff}.${words[7]! >> 8}.${words[7]! & 0xff}`;
      return out;
    }
    out += words[i]!.toString(16);
  }
  if (best.base !== -1 && best.base + best.len === 8) out += ':';
  return out;
}

const PREFIX = /^(0|[1-9][0-9]{0,2})$/;

/**
 * Parses `address[/prefix]` into its family and canonical form (host bits cleared, as
 * iptables does). Returns a reason string when it is not a CIDR.
 */
export function canonicalCIDR(text: unknown): { family: IpFamily; cidr: string } | string {
  if (typeof text !== 'string') return 'not a string';
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const prefixText = slash < 0 ? undefined : text.slice(slash + 1);
  if (prefixText !== undefined && !PREFIX.test(prefixText)) return 'the prefix length is not a number';
  const v4 = parseIPv4(addr);
  if (v4) {
    const prefix = prefixText === undefined ? 32 : Number(prefixText);
    if (prefix > 32) return 'an IPv4 prefix length is at most 32';
    const bits = prefix === 0 ? 0 : ((v4[0]! << 24) | (v4[1]! << 16) | (v4[2]! << 8) | v4[3]!) & (~0 << (32 - prefix));
    const masked = [bits >>> 24, (bits >>> 16) & 0xff, (bits >>> 8) & 0xff, bits & 0xff];
    return { family: 4, cidr: `${masked.join('.')}/${prefix}` };
  }
  const v6 = parseIPv6(addr);
  if (v6) {
    const prefix = prefixText === undefined ? 128 : Number(prefixText);
    if (prefix > 128) return 'an IPv6 prefix length is at most 128';
    const masked = v6.map((w, i) => {
      const keep = Math.max(0, Math.min(16, prefix - i * 16));
      return keep === 0 ? 0 : w & ((0xffff << (16 - keep)) & 0xffff);
    });
    return { family: 6, cidr: `${formatIPv6(masked)}/${prefix}` };
  }
  return 'not an IPv4 or IPv6 address';
}

function uniq<T>(values: T[]): T[] {
  return [...new Set(values)];
}

/**
 * Checks every field and returns the normalised settings; throws
 * ERR_NM_INVALID_CAPTURE_SETTINGS naming every bad value at once.
 */
export function validateCaptureSettings(settings: IptablesCaptureSettings): ValidatedSettings {
  const problems: string[] = [];
  const s = (settings ?? {}) as unknown as Record<string, unknown>;
  if (typeof settings !== 'object' || settings === null) throw invalid(['the settings are not an object'], settings);

  const named = ['outboundPort', 'inboundPort', 'tunnelPort', 'probePort'] as const;
  for (const name of named) {
    if (!isPort(s[name])) problems.push(`${name} ${show(s[name])} is not a port (an integer 1-65535)`);
  }
  if (problems.length === 0) {
    const seen = new Map<number, string>();
    for (const name of named) {
      const port = s[name] as number;
      const other = seen.get(port);
      if (other) problems.push(`${name} ${port} is also ${other}; the proxy listeners need distinct ports`);
      else seen.set(port, name);
    }
  }
  const mark = s.proxyMark;
  if (typeof mark !== 'number' || !Number.isInteger(mark) || mark < 1 || mark > 0xffffffff) {
    problems.push(`proxyMark ${show(mark)} is not a non-zero 32-bit mark`);
  }
  if (typeof s.captureInbound !== 'boolean') problems.push(`captureInbound ${show(s.captureInbound)} is not true or false`);
  const uid = s.excludeUid;
  if (uid !== undefined && (typeof uid !== 'number' || !Number.isInteger(uid) || uid < 0 || uid > 0xfffffffe)) {
    problems.push(`excludeUid ${show(uid)} is not a uid (an integer 0-4294967294)`);
  }

  const portList = (name: 'excludeOutboundPorts' | 'excludeInboundPorts'): number[] => {
    const list = s[name];
    if (!Array.isArray(list)) {
      problems.push(`${name} ${show(list)} is not a list of ports`);
      return [];
    }
    list.forEach((p: unknown, i) => {
      if (!isPort(p)) problems.push(`${name}[${i}] ${show(p)} is not a port (an integer 1-65535)`);
    });
    return uniq(list.filter(isPort));
  };
  const excludeOutboundPorts = portList('excludeOutboundPorts');
  const excludeInboundPorts = portList('excludeInboundPorts');
  if (isPort(s.probePort) && excludeOutboundPorts.includes(s.probePort)) {
    problems.push(`excludeOutboundPorts lists the probe port ${s.probePort}; the capture self-test needs it redirected`);
  }

  const cidrs: { 4: string[]; 6: string[] } = { 4: [], 6: [] };
  const list = s.excludeOutboundCIDRs;
  if (!Array.isArray(list)) {
    problems.push(`excludeOutboundCIDRs ${show(list)} is not a list of CIDRs`);
  } else {
    list.forEach((c: unknown, i) => {
      const parsed = canonicalCIDR(c);
      if (typeof parsed === 'string') problems.push(`excludeOutboundCIDRs[${i}] ${show(c)} is not a CIDR: ${parsed}`);
      else if (!cidrs[parsed.family].includes(parsed.cidr)) cidrs[parsed.family].push(parsed.cidr);
    });
  }

  if (problems.length > 0) throw invalid(problems, settings);
  return {
    outboundPort: s.outboundPort as number,
    inboundPort: s.inboundPort as number,
    tunnelPort: s.tunnelPort as number,
    probePort: s.probePort as number,
    proxyMark: mark as number,
    excludeOutboundPorts,
    excludeInboundPorts,
    excludeOutboundCIDRs: cidrs,
    captureInbound: s.captureInbound as boolean,
    excludeUid: uid as number | undefined,
  };
}

// ---------------------------------------------------------------------------------------
// Rendering

/** One family's rule set, every line in iptables-save form. */
export interface RuleSet {
  family: IpFamily;
  /** Our chains and their rules (`-A NODEMESH_... ...`), in order. PREROUTING is absent when inbound is not captured. */
  chains: Array<{ name: string; rules: string[] }>;
  /** The jumps from the built-in chains (`-A OUTPUT ... -j NODEMESH_OUTPUT`). */
  jumps: Array<{ chain: string; rule: string }>;
}

const TAG = `-m comment --comment ${RULE_TAG}`;

function rule(chain: string, match: string, target: string): string {
  return `-A ${chain}${match ? ` ${match}` : ''} ${TAG} -j ${target}`;
}

function destination(cidr: string): string {
  // iptables-save prints nothing for a /0 address.
  return cidr.endsWith('/0') ? '' : `-d ${cidr}`;
}

function markText(mark: number): string {
  return `0x${mark.toString(16)}`;
}

/** The rules for one family. Throws ERR_NM_INVALID_CAPTURE_SETTINGS on bad settings. */
export function renderRuleSet(family: IpFamily, settings: IptablesCaptureSettings): RuleSet {
  const s = validateCaptureSettings(settings);
  const output: string[] = [
    rule(OUTPUT_CHAIN, `-m mark --mark ${markText(s.proxyMark)}`, 'RETURN'),
    ...(s.excludeUid === undefined ? [] : [rule(OUTPUT_CHAIN, `-m owner --uid-owner ${s.excludeUid}`, 'RETURN')]),
    rule(OUTPUT_CHAIN, `-s ${family === 4 ? INBOUND_PASSTHROUGH_IP4 : INBOUND_PASSTHROUGH_IP6}/${family === 4 ? 32 : 128}`, 'RETURN'),
    rule(OUTPUT_CHAIN, family === 4 ? '-d 127.0.0.0/8' : '-d ::1/128', 'RETURN'),
    ...s.excludeOutboundPorts.map((p) => rule(OUTPUT_CHAIN, `-p tcp -m tcp --dport ${p}`, 'RETURN')),
    ...s.excludeOutboundCIDRs[family].map((c) => rule(OUTPUT_CHAIN, destination(c), 'RETURN')),
    rule(OUTPUT_CHAIN, '-p tcp', `REDIRECT --to-ports ${s.outboundPort}`),
  ];
  const chains = [{ name: OUTPUT_CHAIN, rules: output }];
  const jumps = [{ chain: 'OUTPUT', rule: rule('OUTPUT', '-p tcp', OUTPUT_CHAIN) }];
  if (s.captureInbound) {
    const skip = uniq([s.tunnelPort, s.probePort, PORT_ADMIN, PORT_HEALTH, ...s.excludeInboundPorts]);
    chains.push({
      name: PREROUTING_CHAIN,
      rules: [
        ...skip.map((p) => rule(PREROUTING_CHAIN, `-p tcp -m tcp --dport ${p}`, 'RETURN')),
        rule(PREROUTING_CHAIN, '-p tcp', `REDIRECT --to-ports ${s.inboundPort}`),
      ],
    });
    jumps.push({ chain: 'PREROUTING', rule: rule('PREROUTING', '-p tcp', PREROUTING_CHAIN) });
  }
  return { family, chains, jumps };
}

/** `-A CHAIN rest` → `-I CHAIN 1 rest` (or any other command). */
function withCommand(line: string, command: string): string {
  const m = /^-A (\S+)(.*)$/.exec(line);
  if (!m) throw new Error(`not a saved rule: ${line}`);
  return `${command} ${m[1]}${m[2]}`;
}

/** `-A CHAIN rest` → `-I CHAIN 1 rest`: jumps go first, so no earlier rule in the pod's nat table can bypass capture. */
function insertAtTop(line: string): string {
  return withCommand(line, '-I').replace(/^-I (\S+)/, '-I $1 1');
}

/** iptables-restore --noflush text that installs the rule set in a nat table holding none of it. */
export function renderRestore(family: IpFamily, settings: IptablesCaptureSettings): string {
  const set = renderRuleSet(family, settings);
  return [
    '*nat',
    ...set.chains.map((c) => `:${c.name} - [0:0]`),
    ...set.chains.flatMap((c) => c.rules),
    ...set.jumps.map((j) => insertAtTop(j.rule)),
    'COMMIT',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------
// Reading iptables-save output and planning changes

export interface SavedNat {
  /** Every chain declared in the table, in order (built-in and user). */
  chainNames: string[];
  /** The `-A` lines of each chain, in order. */
  rules: Map<string, string[]>;
}

/** Parses `iptables-save -t nat` output (only the *nat section is read). */
export function parseNatSave(text: string): SavedNat {
  const saved: SavedNat = { chainNames: [], rules: new Map() };
  let inNat = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('*')) {
      inNat = line === '*nat';
      continue;
    }
    if (!inNat) continue;
    if (line === 'COMMIT') {
      inNat = false;
      continue;
    }
    if (line.startsWith(':')) {
      const name = line.slice(1).split(/\s+/)[0]!;
      saved.chainNames.push(name);
      saved.rules.set(name, []);
      continue;
    }
    const m = /^-A (\S+)/.exec(line);
    if (m) {
      const chain = m[1]!;
      if (!saved.rules.has(chain)) {
        saved.chainNames.push(chain);
        saved.rules.set(chain, []);
      }
      saved.rules.get(chain)!.push(line);
    }
  }
  return saved;
}

const REFERENCE = new RegExp(`(^| )-[jg] (${OUR_CHAINS.join('|')})( |$)`);
const TAGGED = new RegExp(`(^| )--comment "?${RULE_TAG}"?( |$)`);

/** Rules outside our chains that belong to nodemesh: jumps to our chains, or tagged rules. */
function ourRulesElsewhere(saved: SavedNat): Array<{ chain: string; rule: string }> {
  const out: Array<{ chain: string; rule: string }> = [];
  for (const [chain, rules] of saved.rules) {
    if (OUR_CHAINS.includes(chain)) continue;
    for (const r of rules) if (REFERENCE.test(r) || TAGGED.test(r)) out.push({ chain, rule: r });
  }
  return out;
}

/** What nodemesh currently has in a saved nat table. */
export interface CurrentRules {
  /** Our chains that exist, with their rules. */
  chains: Array<{ name: string; rules: string[] }>;
  /** Our rules in other chains (the jumps). */
  jumps: Array<{ chain: string; rule: string }>;
}

export function currentRules(saved: SavedNat): CurrentRules {
  return {
    chains: OUR_CHAINS.filter((c) => saved.chainNames.includes(c)).map((name) => ({ name, rules: saved.rules.get(name) ?? [] })),
    jumps: ourRulesElsewhere(saved),
  };
}

export type EnrollAction = 'unchanged' | 'install' | 'replace';

export interface EnrollPlan {
  action: EnrollAction;
  /** iptables-restore --noflush text; absent when unchanged. */
  restore?: string;
  /** Why a replace is needed, for the log. */
  differences: string[];
}

/**
 * Compares a saved nat table with the wanted rule set. When they differ, returns one
 * restore batch that flushes and refills our chains, deletes stray or duplicate jumps,
 * adds missing ones and removes a chain that should no longer exist: all or nothing.
 */
export function planEnroll(family: IpFamily, settings: IptablesCaptureSettings, savedText: string): EnrollPlan {
  const want = renderRuleSet(family, settings);
  const saved = parseNatSave(savedText);
  const have = currentRules(saved);
  const differences: string[] = [];

  for (const chain of want.chains) {
    const existing = have.chains.find((c) => c.name === chain.name);
    if (!existing) differences.push(`chain ${chain.name} is missing`);
    else if (existing.rules.join('\n') !== chain.rules.join('\n')) differences.push(`chain ${chain.name} holds other rules`);
  }
  const unwantedChains = have.chains.filter((c) => !want.chains.some((w) => w.name === c.name));
  for (const c of unwantedChains) differences.push(`chain ${c.name} should not exist`);

  // Match the existing jumps against the wanted ones; everything left over goes.
  const remaining = [...want.jumps];
  const toDelete: Array<{ chain: string; rule: string }> = [];
  for (const j of have.jumps) {
    const i = remaining.findIndex((w) => w.rule === j.rule);
    if (i >= 0) remaining.splice(i, 1);
    else toDelete.push(j);
  }
  for (const j of remaining) differences.push(`jump from ${j.chain} is missing`);
  for (const j of toDelete) differences.push(`unexpected rule in ${j.chain}: ${j.rule}`);

  if (differences.length === 0) return { action: 'unchanged', differences };
  const nothingThere = have.chains.length === 0 && have.jumps.length === 0;
  const lines = [
    '*nat',
    ...want.chains.map((c) => `:${c.name} - [0:0]`), // creates, or (with --noflush) flushes
    ...toDelete.map((j) => withCommand(j.rule, '-D')),
    ...want.chains.flatMap((c) => c.rules),
    ...remaining.map((j) => insertAtTop(j.rule)),
    ...unwantedChains.map((c) => `-F ${c.name}`),
    ...unwantedChains.map((c) => `-X ${c.name}`),
    'COMMIT',
    '',
  ];
  return { action: nothingThere ? 'install' : 'replace', restore: lines.join('\n'), differences };
}

/**
 * The restore batch that removes everything nodemesh put in a saved nat table (jumps
 * first, then our chains), or undefined when there is nothing of ours.
 */
export function planRelease(savedText: string): string | undefined {
  const have = currentRules(parseNatSave(savedText));
  if (have.chains.length === 0 && have.jumps.length === 0) return undefined;
  return [
    '*nat',
    ...have.jumps.map((j) => withCommand(j.rule, '-D')),
    ...have.chains.map((c) => `-F ${c.name}`),
    ...have.chains.map((c) => `-X ${c.name}`),
    'COMMIT',
    '',
  ].join('\n');
}
