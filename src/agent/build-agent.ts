import { existsSync, mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { NativeBinding } from '../datapath/native-binding';
import { openPodSandbox } from '../datapath/netns-pod-sandbox';
import { EbpfCapture } from '../capture/ebpf/ebpf-capture';
import { IptablesCaptureBackend } from '../capture/iptables-backend';
import { BPF_FS_MAGIC, runDoctor, type DoctorReport } from '../capture/doctor';
import type { CaptureBackend, CaptureKind } from '../capture/backend';
import { validateCaptureSettings, type CaptureSettings } from '../capture/settings';
import { NodemeshError } from '../errors';
import { logger } from '../log';
import { run } from '../util/exec';
import type { ConfigSource } from '../config/config-source';
import { Agent, type AgentOptions } from './agent';
import type { PodLocator } from './pod-locator';

export interface AgentConfig extends AgentOptions {
  capture: 'auto' | CaptureKind;
  settings: CaptureSettings;
  /** Names this agent's pinned state: <bpffs>/nodemesh/<instance>, /run/nodemesh/<instance>. */
  instance: string;
  bpffsRoot: string;
  cgroupPath: string;
  objectDir: string;
  locator: PodLocator;
}

export function runDirFor(instance: string): string {
  return join('/run/nodemesh', instance);
}

export function pinDirFor(bpffsRoot: string, instance: string): string {
  return join(bpffsRoot, 'nodemesh', instance);
}

/** Mounts the BPF filesystem when nothing is mounted there yet (a node without bpffs). */
export async function ensureBpffs(bpf: NativeBinding, root: string): Promise<void> {
  if (existsSync(root) && bpf.statfsType(root) === BPF_FS_MAGIC) return;
  mkdirSync(root, { recursive: true });
  await run('mount', ['-t', 'bpf', 'bpf', root]);
}

/**
 * Builds an agent: probes the node, picks the capture back-end (eBPF where every probe
 * passes, else iptables, saying why), and wires proxy, capture and pod sandboxes.
 */
export async function buildAgent(bpf: NativeBinding, config: AgentConfig, source?: ConfigSource): Promise<{ agent: Agent; report: DoctorReport }> {
  const log = logger('agent');
  const settings = validateCaptureSettings(config.settings);
  if (config.capture !== 'iptables') {
    await ensureBpffs(bpf, config.bpffsRoot).catch((err: unknown) => log.warn({ err: String(err) }, 'could not mount the BPF filesystem'));
  }
  const report = await runDoctor(bpf, { cgroupPath: config.cgroupPath, bpffsRoot: config.bpffsRoot, checkAgentCgroup: true }, config.capture);
  if (report.choice === 'none') {
    throw new NodemeshError('ERR_NM_NO_CAPTURE_BACKEND', report.reason, { hint: 'run `nodemesh doctor` on this node for every probe' });
  }
  log.info({ backend: report.choice, reason: report.reason }, 'capture back-end chosen');
  const runDir = runDirFor(config.instance);
  let backend: CaptureBackend;
  if (report.choice === 'ebpf') {
    backend = new EbpfCapture(bpf, {
      settings,
      objectDir: config.objectDir,
      pinDir: pinDirFor(config.bpffsRoot, config.instance),
      cgroupPath: config.cgroupPath,
      runDir,
    });
  } else {
    backend = await IptablesCaptureBackend.create(settings, report.iptablesBackend);
  }
  const agent = new Agent({ ...config, captureReason: report.reason }, {
    backend,
    locator: config.locator,
    openSandbox: (netnsPath) => openPodSandbox(bpf, netnsPath, settings.proxyMark),
    ...(source ? { source } : {}),
  });
  return { agent, report };
}

/** Records the agent's pid so that `sim down` (or an operator) can stop exactly it. */
export function writePidFile(instance: string): () => void {
  const dir = runDirFor(instance);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'agent.pid');
  writeFileSync(file, `${process.pid}\n`);
  // A successor that took over from this agent has written its own pid there: keep it.
  return () => {
    try {
      if (readFileSync(file, 'utf8').trim() === String(process.pid)) rmSync(file, { force: true });
    } catch {
      // already gone
    }
  };
}
