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
import type { WorkloadCertificates } from '../identity/workload-certificates';
import { registerIdentityMetrics } from '../runtime/identity-metrics';
import { ensurePodCertificate, podCertificateFields } from '../runtime/pod-certificate';

/**
 * Sidecar mode (DESIGN.md, "Sidecar mode"): the node proxy's code run as a process inside
 * one pod. It is the agent's runtime (src/runtime: the node proxy, admin and health, the
 * apply loop, the bounded stop) with exactly one pod added, through a PodNetwork of the
 * process's own network namespace, fed by the same configuration sources as the agent; so
 * routing, policy and telemetry are the same code. Capture is the iptables rule set that
 * `nodemesh sidecar-init` installed in the pod before the app started; the sidecar does
 * not touch it.
 *
 * With a CA (`identity`), the sidecar gets its own pod's certificate (with a token bound
 * to the pod, so it can get no other) before it serves, listens on the pod's 15008 for
 * the mTLS tunnel, and tunnels to the pods of the mesh: to node proxies and to other
 * sidecars, as the ambient pods do. Without one there is no tunnel, and its peers are
 * reached in plaintext on their own addresses.
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
  /** The pod's certificate from the CA: mTLS and the tunnel. Undefined: no CA, no tunnel. */
  identity?: WorkloadCertificates;
  trustDomain?: string;
  meshRootNamespace?: string;
  /** The cluster's name in telemetry (Istio's CLUSTER_ID; default Kubernetes). */
  clusterId?: string;
}

/** A sidecar whose certificate could not be had asks again this often (the CA may be back). */
const RETRY_FAILED_MS = 2000;

export class Sidecar {
  private readonly runtime: Runtime;
  private readonly log;
  private pod: PodInfo | undefined;
  private record: SidecarPodRecord;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: SidecarOptions) {
    this.log = logger('sidecar', { pod: options.podKey });
    this.runtime = new Runtime({
      ...options, // the serving options pass through
      kind: 'sidecar',
      log: this.log,
      proxy: {
        tunnel: options.identity !== undefined,
        ...(options.identity && { identity: options.identity }),
        ...(options.trustDomain && { trustDomain: options.trustDomain }),
        ...(options.meshRootNamespace && { meshRootNamespace: options.meshRootNamespace }),
        ...(options.clusterId && { clusterId: options.clusterId }),
      },
    }, {
      reconcile: (snapshot) => this.reconcile(snapshot),
      readiness: () => {
        if (this.record.status === 'enrolled') return { ready: true, reason: `ready: serving ${options.podKey}` };
        return { ready: false, reason: `${this.record.status}: ${this.record.reason ?? ''}` };
      },
      podRecords: () => [this.withIdentity(this.record)],
      capture: () => this.captureReply(),
    });
    this.record = { key: options.podKey, status: 'waiting', reason: 'waiting for the pod in the configuration', ips: [], since: new Date().toISOString() };
    const ready: Gauge = new Gauge({
      name: 'nodemesh_sidecar_ready',
      help: '1 while the sidecar serves its pod (listeners up, capture verified where it can be).',
      registers: [this.registry],
      collect: (): void => ready.set(this.record.status === 'enrolled' ? 1 : 0),
    });
    if (options.identity) registerIdentityMetrics(this.registry, options.identity);
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
      // Its certificate first: a sidecar that cannot prove its pod's identity serves nothing
      // (its 15008 would have nothing to present), and says why.
      await ensurePodCertificate(this.proxy.config.current, this.options.identity, pod);
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
      this.retryLater();
    }
  }

  private setStatus(status: SidecarStatus, reason: string | undefined, ips: string[]): void {
    this.record = { key: this.options.podKey, status, ...(reason ? { reason } : {}), ips, since: new Date().toISOString() };
  }

  /** The record with the pod's certificate, when it holds one (`nodemesh status`). */
  private withIdentity(record: SidecarPodRecord): SidecarPodRecord {
    return this.pod ? { ...record, ...podCertificateFields(this.proxy.config.current, this.options.identity, this.pod) } : record;
  }

  /** A failed start is tried again (the CA may have been down), until it serves or stops. */
  private retryLater(): void {
    if (this.retryTimer || this.runtime.stopping) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.runtime.reconcileAgain();
    }, RETRY_FAILED_MS);
    this.retryTimer.unref();
  }

  /** Stops: not ready at once, listeners closed, open connections get drainMs, then everything closes. */
  async stop(cut?: AbortSignal): Promise<void> {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.options.identity?.stop();
    this.setStatus('draining', 'stopping', this.record.ips);
    await this.runtime.stop(cut, { afterDrain: () => this.options.sandbox?.close() });
  }
}
