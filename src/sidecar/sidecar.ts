import { Gauge, type Registry } from 'prom-client';
import type { CaptureReply, SidecarPodRecord, SidecarStatus } from '../admin/debug-replies';
import type { CaptureSettings } from '../capture/settings';
import type { ConfigSource } from '../config/config-source';
import type { SourceResult } from '../config/config-source';
import type { MeshSnapshot } from '../config/snapshot';
import type { PodNetwork } from '../datapath/pod-network';
import type { PodSandbox } from '../datapath/pod-sandbox';
import { describeError } from '../errors';
import { logger } from '../log';
import { podKey, type PodInfo } from '../mesh/model';
import type { NodeProxy } from '../proxy/node/node-proxy';
import { probeCapture } from '../runtime/capture-probe';
import { Runtime, type ServingOptions } from '../runtime/runtime';

/**
 * Sidecar mode (DESIGN.md, "Sidecar mode"): the node proxy's code run as a process inside
 * one pod. It is the agent's runtime (src/runtime: the node proxy, admin and health, the
 * apply loop, the bounded stop) with exactly one pod added, through a PodNetwork of the
 * process's own network namespace, fed by the same configuration sources as the agent; so
 * routing, policy and telemetry are the same code. Capture is the iptables rule set that
 * `nodemesh sidecar-init` installed in the pod before the app started; the sidecar does
 * not touch it, and there is no tunnel (a sidecar's peer is reached on its own address).
 */

export interface SidecarOptions extends ServingOptions {
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
}

export class Sidecar {
  private readonly runtime: Runtime;
  private readonly log;
  private pod: PodInfo | undefined;
  private record: SidecarPodRecord;

  constructor(private readonly options: SidecarOptions) {
    this.log = logger('sidecar', { pod: options.podKey });
    this.runtime = new Runtime({
      ...options, // the serving options pass through
      kind: 'sidecar',
      log: this.log,
      proxy: { tunnel: false },
    }, {
      reconcile: (snapshot) => this.reconcile(snapshot),
      readiness: () => {
        if (this.record.status === 'enrolled') return { ready: true, reason: `ready: serving ${options.podKey}` };
        return { ready: false, reason: `${this.record.status}: ${this.record.reason ?? ''}` };
      },
      podRecords: () => [this.record],
      capture: () => this.captureReply(),
    });
    this.record = { key: options.podKey, status: 'waiting', reason: 'waiting for the pod in the configuration', ips: [], since: new Date().toISOString() };
    const ready: Gauge = new Gauge({
      name: 'nodemesh_sidecar_ready',
      help: '1 while the sidecar serves its pod (listeners up, capture verified where it can be).',
      registers: [this.registry],
      collect: (): void => ready.set(this.record.status === 'enrolled' ? 1 : 0),
    });
  }

  get registry(): Registry {
    return this.runtime.registry;
  }

  get proxy(): NodeProxy {
    return this.runtime.proxy;
  }

  /** Serves health and admin, loads the configuration and starts the pod's listeners. */
  start(): Promise<void> {
    return this.runtime.start();
  }

  status(): SidecarPodRecord {
    return { ...this.record };
  }

  private captureReply(): CaptureReply {
    const { options } = this;
    return {
      backend: 'iptables',
      reason: `sidecar: rules installed by nodemesh sidecar-init in the pod's namespace; loops avoided by ${options.loopAvoidance === 'mark' ? 'the proxy mark' : 'the proxy uid'}`,
      mode: 'sidecar',
      settings: options.settings,
      counters: {},
      namespaces: [],
    };
  }

  /** A new configuration: swap the snapshot, then (re)start the pod's listeners when the pod is new or changed. */
  apply(result: SourceResult): Promise<void> {
    return this.runtime.apply(result);
  }

  /** Waits for queued configuration changes. */
  settled(): Promise<void> {
    return this.runtime.settled();
  }

  private async reconcile(snapshot: MeshSnapshot): Promise<void> {
    if (this.runtime.stopping) return;
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
    this.setStatus('draining', 'stopping', this.record.ips);
    await this.runtime.stop(cut, { afterDrain: () => this.options.sandbox?.close() });
  }
}
