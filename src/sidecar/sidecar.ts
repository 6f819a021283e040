import { Gauge, Registry } from 'prom-client';
import { collectProcessMetrics } from '../telemetry/process-metrics';
import { AdminServer } from '../admin/admin-server';
import { HealthServer } from '../admin/health-server';
import type { SidecarPodRecord, SidecarStatus } from '../admin/debug-replies';
import type { ConfigSource } from '../config/config-source';
import { probeCapture } from '../runtime/capture-probe';
import type { PodSandbox } from '../datapath/pod-sandbox';
import type { CaptureSettings } from '../capture/settings';
import type { SourceResult } from '../config/directory-source';
import { MeshSnapshot } from '../config/snapshot';
import { describeError } from '../errors';
import { logger } from '../log';
import { podKey, type PodInfo } from '../mesh/model';
import { NodeProxy } from '../proxy/node/node-proxy';
import type { PodNetwork } from '../datapath/pod-network';
import { withDeadline } from '../util/deadline';

/**
 * Sidecar mode (DESIGN.md, "Sidecar mode"): the node proxy's code run as a process inside
 * one pod. It is a NodeProxy with exactly one pod added, through a PodNetwork of the
 * process's own network namespace, fed by the same configuration sources as the agent; so
 * routing, policy and telemetry are the same code. Capture is the iptables rule set that
 * `nodemesh sidecar-init` installed in the pod before the app started; the sidecar does
 * not touch it, and there is no tunnel (a sidecar's peer is reached on its own address).
 */

export interface SidecarOptions {
  /** namespace/name of the pod this sidecar runs in. */
  podKey: string;
  source: ConfigSource;
  /** The pod's own network namespace. */
  network: PodNetwork;
  /**
   * When the network can also connect unmarked (as the app does): the capture self-test
   * runs through it before the sidecar reports ready. Absent for an unprivileged sidecar,
   * whose own connections the uid rule exempts from capture, so it cannot test it.
   */
  sandbox?: PodSandbox;
  settings: CaptureSettings;
  /** How loops are avoided: 'mark' (SO_MARK) or 'uid' (the iptables owner rule); shown in /debug/capture. */
  loopAvoidance: 'mark' | 'uid';
  adminPort?: number;
  adminHost?: string;
  adminSocket?: string;
  healthPort?: number;
  /** A file path, or '-' for stdout. */
  accessLog?: string;
  /** Grace for open connections on stop (ms). */
  drainMs?: number;
}

export class Sidecar {
  readonly registry = new Registry();
  readonly proxy: NodeProxy;
  private readonly log;
  private snapshot = MeshSnapshot.empty();
  private version = 0;
  private pod: PodInfo | undefined;
  private record: SidecarPodRecord;
  private admin: AdminServer | undefined;
  private health: HealthServer | undefined;
  private applying: Promise<void> = Promise.resolve();
  private lastRejected: SourceResult['rejected'] = [];
  private stopping = false;

  constructor(private readonly options: SidecarOptions) {
    this.log = logger('sidecar', { pod: options.podKey });
    collectProcessMetrics(this.registry, 'nodemesh_sidecar_');
    this.proxy = new NodeProxy(this.registry, options.settings, {
      tunnel: false,
      ...(options.accessLog ? { accessLog: options.accessLog === '-' ? 'stdout' : { path: options.accessLog } } : {}),
    });
    this.record = { key: options.podKey, status: 'waiting', reason: 'waiting for the pod in the configuration', ips: [], since: new Date().toISOString() };
    const ready: Gauge = new Gauge({
      name: 'nodemesh_sidecar_ready',
      help: '1 while the sidecar serves its pod (listeners up, capture verified where it can be).',
      registers: [this.registry],
      collect: (): void => ready.set(this.record.status === 'enrolled' ? 1 : 0),
    });
  }

  /** Serves health and admin, loads the configuration and starts the pod's listeners. */
  async start(): Promise<void> {
    const { options } = this;
    this.health = new HealthServer(() => this.readiness());
    if (options.healthPort !== undefined) await this.health.start(options.healthPort, '0.0.0.0', this.log);
    this.admin = new AdminServer({
      registry: this.registry,
      ...(options.adminPort !== undefined ? { port: options.adminPort, host: options.adminHost ?? '0.0.0.0' } : {}),
      ...(options.adminSocket ? { socketPath: options.adminSocket } : {}),
      routes: {
        '/debug/pods': () => [this.record],
        '/debug/connections': (q) => this.proxy.log.list({ pod: q.get('pod') ?? undefined, direction: q.get('direction') ?? undefined }),
        '/debug/capture': () => ({
          backend: 'iptables',
          reason: `sidecar: rules installed by nodemesh sidecar-init in the pod's namespace; loops avoided by ${options.loopAvoidance === 'mark' ? 'the proxy mark' : 'the proxy uid'}`,
          mode: 'sidecar',
          settings: options.settings,
          counters: {},
          namespaces: [],
        }),
        '/debug/config': () => this.proxy.describeConfig(this.lastRejected),
        '/debug/open': () => this.proxy.openConnections(),
      },
    });
    await this.admin.start();
    const first = await options.source.load();
    await this.apply(first);
    options.source.watch((result) => void this.apply(result), (err) => this.log.warn({ err: describeError(err) }, 'configuration source failed; retrying'));
  }

  status(): SidecarPodRecord {
    return { ...this.record };
  }

  private readiness(): { ready: boolean; reason: string } {
    if (this.record.status === 'enrolled') return { ready: true, reason: `ready: serving ${this.options.podKey}` };
    return { ready: false, reason: `${this.record.status}: ${this.record.reason ?? ''}` };
  }

  /** A new configuration: swap the snapshot, then (re)start the pod's listeners when the pod is new or changed. */
  apply(result: SourceResult): Promise<void> {
    this.version += 1;
    this.snapshot = MeshSnapshot.from(result, this.version);
    this.lastRejected = result.rejected;
    for (const r of result.rejected) this.log.warn({ rejected: r }, 'configuration object rejected');
    this.proxy.updateSnapshot(this.snapshot);
    const snapshot = this.snapshot;
    this.applying = this.applying.then(() => this.reconcile(snapshot)).catch((err: unknown) => {
      this.log.error({ err: describeError(err) }, 'applying the configuration failed');
    });
    return this.applying;
  }

  /** Waits for queued configuration changes. */
  settled(): Promise<void> {
    return this.applying;
  }

  private async reconcile(snapshot: MeshSnapshot): Promise<void> {
    if (this.stopping) return;
    const pod = snapshot.pods.get(this.options.podKey);
    if (!pod || pod.ips.length === 0) {
      if (!this.pod) this.setStatus('waiting', `pod ${this.options.podKey} is not in the configuration yet (or has no IP)`, []);
      else this.log.warn('the pod left the configuration; serving it with what was known');
      return;
    }
    const mode = snapshot.modeDecision(pod);
    if (mode.mode !== 'sidecar') this.log.warn({ mode: mode.mode, reason: mode.reason }, 'the pod is not in sidecar mode by the configuration; serving it anyway, since this sidecar runs inside it');
    if (this.pod && this.record.status === 'enrolled' && this.pod.uid === pod.uid && this.pod.ips.join() === pod.ips.join()) {
      this.pod = pod; // labels may change (telemetry reads them from the snapshot anyway)
      return;
    }
    try {
      await this.proxy.addPod(pod, this.options.network);
      this.pod = pod;
      if (this.options.sandbox) await probeCapture(this.options.sandbox, pod.ips, this.options.settings.probePort);
      this.setStatus('enrolled', undefined, pod.ips);
      this.log.info({ ips: pod.ips, verified: this.options.sandbox !== undefined }, 'serving the pod');
    } catch (err) {
      await this.proxy.removePod(podKey(pod), true);
      this.pod = undefined;
      this.setStatus('failed', describeError(err), pod.ips);
      this.log.error({ err: describeError(err), code: (err as { code?: string }).code }, 'cannot serve the pod');
    }
  }

  private setStatus(status: SidecarStatus, reason: string | undefined, ips: string[]): void {
    this.record = { key: this.options.podKey, status, ...(reason ? { reason } : {}), ips, since: new Date().toISOString() };
  }

  /** Stops: not ready at once, listeners closed, open connections get drainMs, then everything closes. */
  async stop(cut?: AbortSignal): Promise<void> {
    this.stopping = true;
    this.setStatus('draining', 'stopping', this.record.ips);
    this.options.source.close();
    await withDeadline(this.applying, APPLY_WAIT_MS, 'the configuration change in progress').catch((err: unknown) => {
      this.log.warn({ err: describeError(err) }, 'stopping before the configuration change finished');
    });
    await this.proxy.close(this.options.drainMs ?? 0, cut);
    await this.admin?.close();
    this.options.sandbox?.close();
    await this.health?.close();
  }
}

/** How long a stop waits for the configuration change in progress (normally milliseconds). */
const APPLY_WAIT_MS = 5000;
