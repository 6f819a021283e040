import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NativeBinding } from '../../datapath/native-binding';
import { NodemeshError, describeError, hasCode } from '../../errors';
import { logger } from '../../log';
import type { CaptureBackend, CaptureTarget, EnrolledNamespace, PodListenerFds } from '../backend';
import type { CaptureSettings } from '../settings';
import {
  AF_INET,
  AF_INET6,
  DIR_INBOUND,
  DIR_OUTBOUND,
  POD_CAPTURE_INBOUND,
  POD_CAPTURE_OUTBOUND,
  STAT_NAMES,
  decodePodConfig,
  encodeCidrKey,
  encodeIpKey,
  encodeListenerKey,
  encodePodConfig,
  encodePortKey,
  encodeU32,
  encodeU64,
  familyOf,
  sumPerCpuU64,
} from './bpf-layout';
import { CAPTURE_PROGRAMS, SK_LOOKUP_PROGRAM, SK_MSG_PROGRAM, settingsGlobals, type ProgramSpec } from './programs';

export interface EbpfCaptureOptions {
  settings: CaptureSettings;
  /** Directory of the compiled *.bpf.o files. */
  objectDir: string;
  /** Where this agent's objects are pinned: <bpffs>/nodemesh/<instance>. */
  pinDir: string;
  /** The cgroup v2 directory the cgroup programs attach to; it must contain the pods'
   * cgroups and the agent's own (whose sockets the getsockopt and sockops programs see). */
  cgroupPath: string;
  /** Run-state directory (tmpfs): what the pinned objects were loaded with. */
  runDir: string;
}

const BPF_ANY = 0;

interface InstallRecord {
  fingerprint: string;
  cgroupPath: string;
}

/**
 * eBPF capture: cgroup connect4/6 + sockops + getsockopt attached once per node at the
 * capture cgroup, sk_lookup attached per pod namespace, everything pinned so that a new
 * agent adopts it and enrolled pods stay captured across restarts.
 *
 * Pin layout under pinDir: maps/<map> (libbpf pin-by-name), links/cgroup-<prog>,
 * links/sk-lookup-<netns cookie>, progs/<prog>.
 */
export class EbpfCapture implements CaptureBackend {
  readonly kind = 'ebpf' as const;
  readonly settings: CaptureSettings;
  private readonly log = logger('capture', { backend: 'ebpf' });
  private maps = new Map<string, number>();
  private skLookupProg: number | undefined;

  constructor(
    private readonly bpf: NativeBinding,
    private readonly options: EbpfCaptureOptions,
  ) {
    this.settings = options.settings;
  }

  private get mapsDir(): string { return join(this.options.pinDir, 'maps'); }
  private get linksDir(): string { return join(this.options.pinDir, 'links'); }
  private get progsDir(): string { return join(this.options.pinDir, 'progs'); }
  private get recordPath(): string { return join(this.options.runDir, 'ebpf-capture.json'); }

  private fingerprint(): string {
    const s = this.settings;
    return JSON.stringify([s.outboundPort, s.inboundPort, s.tunnelPort, s.probePort, s.proxyMark, s.skMsg]);
  }

  async install(): Promise<void> {
    for (const dir of [this.mapsDir, this.linksDir, this.progsDir, this.options.runDir]) mkdirSync(dir, { recursive: true });
    const record = this.readRecord();
    const pinned = CAPTURE_PROGRAMS.every((p) => existsSync(join(this.linksDir, `cgroup-${p.program}`)));
    if (record && pinned && record.fingerprint === this.fingerprint() && record.cgroupPath === this.options.cgroupPath && this.linksAlive()) {
      this.log.info({ pinDir: this.options.pinDir }, 'adopting pinned capture programs');
      this.openMaps();
      this.skLookupProg = this.bpf.objGet(join(this.progsDir, SK_LOOKUP_PROGRAM.program));
    } else {
      if (record || pinned) this.log.info({ pinDir: this.options.pinDir, reason: record?.fingerprint === this.fingerprint() ? 'links missing' : 'settings changed' }, 'replacing pinned capture programs');
      this.loadAndAttach();
      writeFileSync(this.recordPath, JSON.stringify({ fingerprint: this.fingerprint(), cgroupPath: this.options.cgroupPath } satisfies InstallRecord));
    }
    this.syncExclusions();
  }

  private readRecord(): InstallRecord | undefined {
    try {
      return JSON.parse(readFileSync(this.recordPath, 'utf8')) as InstallRecord;
    } catch {
      return undefined;
    }
  }

  /** True when every pinned cgroup link is still attached to a cgroup. */
  private linksAlive(): boolean {
    return CAPTURE_PROGRAMS.every((p) => {
      let fd: number | undefined;
      try {
        fd = this.bpf.objGet(join(this.linksDir, `cgroup-${p.program}`));
        return this.bpf.linkInfo(fd).targetId !== 0;
      } catch {
        return false;
      } finally {
        if (fd !== undefined) this.bpf.close(fd);
      }
    });
  }

  private openMaps(): void {
    this.closeMaps();
    for (const name of readdirSync(this.mapsDir)) this.maps.set(name, this.bpf.objGet(join(this.mapsDir, name)));
  }

  private closeMaps(): void {
    for (const fd of this.maps.values()) this.bpf.close(fd);
    this.maps.clear();
  }

  private map(name: string): number {
    const fd = this.maps.get(name);
    if (fd === undefined) {
      throw new NodemeshError('ERR_NM_BPF_MAP_MISSING', `the pinned map ${name} is missing under ${this.mapsDir}`, {
        hint: 'the BPF filesystem was cleared under a running agent; restart the agent to reload capture',
      });
    }
    return fd;
  }

  /** Loads every object (maps are pinned or reused by name), attaches and pins. */
  private loadAndAttach(): void {
    const cgroupFd = this.openCgroup();
    try {
      for (const spec of CAPTURE_PROGRAMS) {
        const prog = this.loadProgram(spec);
        try {
          const linkPin = join(this.linksDir, `cgroup-${spec.program}`);
          this.detachPinnedLink(linkPin);
          const link = this.bpf.linkCreate(prog, cgroupFd, spec.attach);
          try {
            this.bpf.objPin(link, linkPin);
          } finally {
            this.bpf.close(link);
          }
        } finally {
          this.bpf.close(prog);
        }
      }
    } finally {
      this.bpf.close(cgroupFd);
    }
    // Per-pod sk_lookup links of the previous programs are replaced at the next enroll.
    for (const name of readdirSync(this.linksDir)) if (name.startsWith('sk-lookup-')) this.detachPinnedLink(join(this.linksDir, name));
    this.replacePinnedProgram(SK_LOOKUP_PROGRAM);
    this.skLookupProg = this.bpf.objGet(join(this.progsDir, SK_LOOKUP_PROGRAM.program));
    this.openMaps();

    // sk_msg attaches to the pair sockhash itself (not a link): detach the old one first.
    const pairs = this.map('nm_sock_pairs_v1');
    const oldMsg = join(this.progsDir, SK_MSG_PROGRAM.program);
    if (existsSync(oldMsg)) {
      const fd = this.bpf.objGet(oldMsg);
      try {
        this.bpf.progDetach(fd, pairs, 'sk_msg_verdict');
      } catch (err) {
        if (!hasCode(err, 'ENOENT')) throw err;
      } finally {
        this.bpf.close(fd);
        rmSync(oldMsg, { force: true });
      }
    }
    if (this.settings.skMsg) {
      this.replacePinnedProgram(SK_MSG_PROGRAM);
      const fd = this.bpf.objGet(oldMsg);
      try {
        this.bpf.progAttach(fd, pairs, 'sk_msg_verdict');
      } finally {
        this.bpf.close(fd);
      }
    }
  }

  private openCgroup(): number {
    try {
      return this.bpf.cgroupOpen(this.options.cgroupPath);
    } catch (err) {
      throw new NodemeshError('ERR_NM_CGROUP_UNAVAILABLE', `cannot open the capture cgroup ${this.options.cgroupPath}: ${describeError(err)}`, {
        hint: 'pass --cgroup with a cgroup v2 directory that contains the pods (see `nodemesh doctor`)',
        cause: err,
      });
    }
  }

  /** Opens, configures and loads one object; returns a fd of its program. */
  private loadProgram(spec: ProgramSpec): number {
    const handle = this.bpf.objectOpen(join(this.options.objectDir, spec.object), this.mapsDir);
    try {
      for (const [name, value] of settingsGlobals(this.settings)) this.bpf.objectSetGlobal(handle, name, value);
      this.bpf.objectLoad(handle);
      return this.bpf.objectProgramFd(handle, spec.program);
    } catch (err) {
      throw new NodemeshError('ERR_NM_BPF_LOAD', `loading ${spec.object} failed: ${describeError(err)}`, {
        hint: 'run `nodemesh doctor` to see which kernel feature is missing; `--capture iptables` works on any kernel',
        cause: err,
      });
    } finally {
      this.bpf.objectClose(handle);
    }
  }

  private replacePinnedProgram(spec: ProgramSpec): void {
    const pin = join(this.progsDir, spec.program);
    rmSync(pin, { force: true });
    const prog = this.loadProgram(spec);
    try {
      this.bpf.objPin(prog, pin);
    } finally {
      this.bpf.close(prog);
    }
  }

  private detachPinnedLink(pin: string): void {
    if (!existsSync(pin)) return;
    try {
      const fd = this.bpf.objGet(pin);
      try {
        this.bpf.linkDetach(fd);
      } catch (err) {
        // A link whose target is gone (netns destroyed) is already detached.
        if (!hasCode(err, 'ENOLINK') && !hasCode(err, 'EINVAL')) throw err;
      } finally {
        this.bpf.close(fd);
      }
    } finally {
      rmSync(pin, { force: true });
    }
  }

  /** Makes the exclusion maps hold exactly the configured ports and CIDRs. */
  private syncExclusions(): void {
    const ports = this.map('nm_excluded_ports_v1');
    const cidrs = this.map('nm_excluded_cidrs_v1');
    for (const fd of [ports, cidrs]) for (const key of this.keys(fd)) this.bpf.mapDelete(fd, key);
    const one = Buffer.from([1]);
    for (const p of this.settings.excludeOutboundPorts) this.bpf.mapUpdate(ports, encodePortKey(p, DIR_OUTBOUND), one, BPF_ANY);
    for (const p of this.settings.excludeInboundPorts) this.bpf.mapUpdate(ports, encodePortKey(p, DIR_INBOUND), one, BPF_ANY);
    for (const c of this.settings.excludeOutboundCIDRs) this.bpf.mapUpdate(cidrs, encodeCidrKey(c), one, BPF_ANY);
  }

  private keys(fd: number): Buffer[] {
    const out: Buffer[] = [];
    let key = this.bpf.mapNextKey(fd, null);
    while (key) {
      out.push(key);
      key = this.bpf.mapNextKey(fd, key);
    }
    return out;
  }

  async enroll(target: CaptureTarget, listeners: PodListenerFds): Promise<void> {
    const cookie = target.netnsCookie;
    // Listeners first and the enrolled entry last: capture starts only when everything
    // it redirects to is in place.
    const outMap = this.map('nm_out_listen_v1');
    for (const l of listeners.outbound) this.bpf.mapUpdate(outMap, encodeListenerKey(cookie, l.family === 6 ? AF_INET6 : AF_INET), encodeU64(BigInt(l.fd)), BPF_ANY);
    const inMap = this.map('nm_in_listen_v1');
    for (const l of listeners.inbound) {
      for (const ip of target.ips) {
        if (familyOf(ip) !== (l.family === 6 ? AF_INET6 : AF_INET)) continue;
        this.bpf.mapUpdate(inMap, encodeIpKey(ip), encodeU64(BigInt(l.fd)), BPF_ANY);
      }
    }
    if (this.settings.captureInbound) this.attachSkLookup(target);
    const flags = POD_CAPTURE_OUTBOUND | (this.settings.captureInbound ? POD_CAPTURE_INBOUND : 0);
    this.bpf.mapUpdate(this.map('nm_enrolled_v1'), encodeU64(cookie), encodePodConfig(flags), BPF_ANY);
  }

  private skLookupPin(cookie: bigint): string {
    return join(this.linksDir, `sk-lookup-${cookie.toString(16)}`);
  }

  private attachSkLookup(target: CaptureTarget): void {
    const pin = this.skLookupPin(target.netnsCookie);
    if (existsSync(pin)) {
      // Adopted from a previous agent: keep it if it still hangs on this namespace.
      const fd = this.bpf.objGet(pin);
      try {
        if (this.bpf.linkInfo(fd).targetId !== 0) return;
      } finally {
        this.bpf.close(fd);
      }
      this.detachPinnedLink(pin);
    }
    let netns: number;
    try {
      netns = this.bpf.netnsOpen(target.netnsPath);
    } catch (err) {
      if (hasCode(err, 'ENOENT')) {
        throw new NodemeshError('ERR_NM_POD_NETNS_GONE', `the network namespace of pod ${target.key} (${target.netnsPath}) vanished`, {
          hint: 'the pod was deleted while it was being enrolled',
          cause: err,
        });
      }
      throw err;
    }
    try {
      const link = this.bpf.linkCreate(this.skLookupProg!, netns, 'sk_lookup');
      try {
        this.bpf.objPin(link, pin);
      } finally {
        this.bpf.close(link);
      }
    } finally {
      this.bpf.close(netns);
    }
  }

  async release(target: CaptureTarget): Promise<void> {
    const cookie = target.netnsCookie;
    // Enrolled entry first: from here on the pod's new connections go direct.
    this.bpf.mapDelete(this.map('nm_enrolled_v1'), encodeU64(cookie));
    for (const family of [AF_INET, AF_INET6]) this.bpf.mapDelete(this.map('nm_out_listen_v1'), encodeListenerKey(cookie, family));
    for (const ip of target.ips) this.bpf.mapDelete(this.map('nm_in_listen_v1'), encodeIpKey(ip));
    this.detachPinnedLink(this.skLookupPin(cookie));
  }

  async enrolled(): Promise<EnrolledNamespace[]> {
    const fd = this.map('nm_enrolled_v1');
    return this.keys(fd).map((key) => {
      const value = this.bpf.mapLookup(fd, key);
      const flags = value ? decodePodConfig(value).flags : 0;
      return { netnsCookie: key.readBigUInt64LE(0), outbound: (flags & POD_CAPTURE_OUTBOUND) !== 0, inbound: (flags & POD_CAPTURE_INBOUND) !== 0 };
    });
  }

  counters(): Record<string, number> {
    const fd = this.maps.get('nm_stats_v1');
    const out: Record<string, number> = {};
    if (fd === undefined) return out;
    STAT_NAMES.forEach((name, i) => {
      const value = this.bpf.mapLookup(fd, encodeU32(i));
      out[name] = value ? Number(sumPerCpuU64(value)) : 0;
    });
    return out;
  }

  close(): void {
    this.closeMaps();
    if (this.skLookupProg !== undefined) this.bpf.close(this.skLookupProg);
    this.skLookupProg = undefined;
  }

  async uninstall(): Promise<void> {
    this.close();
    removePinnedCapture(this.bpf, this.options.pinDir);
    rmSync(this.recordPath, { force: true });
    this.log.info({ pinDir: this.options.pinDir }, 'eBPF capture removed from the node');
  }
}

/**
 * Detaches every pinned link and the sk_msg program of one agent instance and removes its
 * pin directory. Needs no running agent: `sim down` and uninstall use it.
 */
export function removePinnedCapture(bpf: NativeBinding, pinDir: string): void {
  const linksDir = join(pinDir, 'links');
  if (existsSync(linksDir)) {
    for (const name of readdirSync(linksDir)) {
      const pin = join(linksDir, name);
      try {
        const fd = bpf.objGet(pin);
        try {
          bpf.linkDetach(fd);
        } catch {
          // Already detached (its cgroup or namespace is gone).
        } finally {
          bpf.close(fd);
        }
      } finally {
        rmSync(pin, { force: true });
      }
    }
  }
  const msgPin = join(pinDir, 'progs', SK_MSG_PROGRAM.program);
  const pairsPin = join(pinDir, 'maps', 'nm_sock_pairs_v1');
  if (existsSync(msgPin) && existsSync(pairsPin)) {
    const prog = bpf.objGet(msgPin);
    const map = bpf.objGet(pairsPin);
    try {
      bpf.progDetach(prog, map, 'sk_msg_verdict');
    } catch {
      // Not attached.
    } finally {
      bpf.close(prog);
      bpf.close(map);
    }
  }
  rmSync(pinDir, { recursive: true, force: true });
}
