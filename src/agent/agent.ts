import { coreKinds } from '../kinds/registry';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { CaptureReply, PodRecord } from '../admin/debug-replies';
import type { CaptureBackend, CaptureTarget } from '../capture/backend';
import type { ConfigSource } from '../config/config-source';
import type { SourceResult } from '../config/config-source';
import { DirectorySource } from '../config/directory-source';
import type { MeshSnapshot } from '../config/snapshot';
import type { PodSandbox, PodSandboxFactory } from '../datapath/pod-sandbox';
import { NodemeshError, describeError, hasCode } from '../errors';
import { logger } from '../log';
import { podKey, type PodInfo } from '../mesh/model';
import type { NodeProxy } from '../proxy/node/node-proxy';
import { probeCapture } from '../runtime/capture-probe';
import { Runtime, type ServingOptions } from '../runtime/runtime';
import type { PodLocator } from './pod-locator';
import type { WorkloadCertificates } from '../identity/workload-certificates';
import { registerIdentityMetrics } from '../runtime/identity-metrics';
import { ensurePodCertificate, podCertificateFields } from '../runtime/pod-certificate';

export interface AgentOptions extends ServingOptions {
  /** The node this agent serves: only pods with this spec.nodeName are enrolled. */
  nodeName: string;
  /** The YAML directory (or file) source. */
  sourcePath: string;
  /** namespace/name of the agent's own pod, never captured. */
  agentPodKey?: string;
  /** Why this capture back-end was chosen (from `nodemesh doctor`'s probes). */
  captureReason?: string;
  /**
   * The workloads' certificates from the CA: a pod is captured only once its identity has
   * one (mTLS on the tunnel). Undefined: no CA configured, no tunnel.
   */
  identity?: WorkloadCertificates;
  /**
   * The pods captured now, after every reconcile (`--kube` publishes them as MeshMembers
   * for the other nodes' agents).
   */
  onEnrolled?(pods: PodInfo[]): void;
  /** The trust domain of the workloads' SPIFFE IDs; the CA's must be the same (default cluster.local). */
  trustDomain?: string;
  /** Where a PeerAuthentication without a selector applies to the whole mesh (default nodemesh-system). */
  meshRootNamespace?: string;
  /** The cluster's name in telemetry (Istio's CLUSTER_ID; default Kubernetes). */
  clusterId?: string;
}

export interface AgentDeps {
  backend: CaptureBackend;
  locator: PodLocator;
  openSandbox: PodSandboxFactory;
  /** Default: a DirectorySource on options.sourcePath. */
  source?: ConfigSource;
}

/** Failures that the next attempt may not hit (a sandbox still starting). */
// A CA that is down or slow: the pod is tried again every RETRY_FAILED_MS until it answers.
const RETRYABLE = new Set(['ERR_NM_POD_NOT_FOUND', 'ERR_NM_POD_NETNS_GONE', 'ERR_NM_IDENTITY_UNAVAILABLE']);
const RETRY_FAILED_MS = 5000;

interface Enrolled {
  pod: PodInfo;
  sandbox: PodSandbox;
  target: CaptureTarget;
}

/**
 * The node agent: keeps the set of captured pods equal to the set that the configuration
 * says should be (ambient mode, on this node), one pod at a time and without letting one
 * pod's failure touch another. A pod that cannot be captured safely keeps working
 * uncaptured and is reported as failed with the reason.
 */
export class Agent {
  private readonly runtime: Runtime;
  private readonly enrolled = new Map<string, Enrolled>();
  private readonly failed = new Map<string, PodRecord>();
  private readonly log = logger('agent');
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly podGauge: Gauge<'status'>;
  private readonly enrollments: Counter<'result'>;

  constructor(
    private readonly options: AgentOptions,
    private readonly deps: AgentDeps,
  ) {
    this.runtime = new Runtime({
      ...options, // the serving options pass through
      kind: 'agent',
      log: this.log,
      source: deps.source ?? new DirectorySource(options.sourcePath, { kinds: coreKinds() }),
      settings: deps.backend.settings,
      proxy: { nodeName: options.nodeName, ...(options.identity ? { identity: options.identity } : {}), ...(options.trustDomain ? { trustDomain: options.trustDomain } : {}), ...(options.meshRootNamespace ? { meshRootNamespace: options.meshRootNamespace } : {}), ...(options.clusterId ? { clusterId: options.clusterId } : {}) },
    }, {
      reconcile: (snapshot) => this.reconcile(snapshot),
      readiness: () => ({ ready: true, reason: `ready: ${this.enrolled.size} pods captured, ${this.failed.size} failed` }),
      podRecords: () => this.podRecords(),
      capture: () => this.captureReply(),
    });
    const registry = this.registry;
    if (options.identity) registerIdentityMetrics(registry, options.identity);
    this.podGauge = new Gauge({
      name: 'nodemesh_pods',
      help: 'Pods on this node that should be captured, by status (enrolled, failed).',
      labelNames: ['status'],
      registers: [registry],
      collect: () => {
        this.podGauge.set({ status: 'enrolled' }, this.enrolled.size);
        this.podGauge.set({ status: 'failed' }, this.failed.size);
      },
    });
    this.enrollments = new Counter({
      name: 'nodemesh_enrollments_total',
      help: 'Pod enrolment attempts by result (ok, failed).',
      labelNames: ['result'],
      registers: [registry],
    });
    const backend = deps.backend;
    const seen = new Map<string, number>();
    const captureEvents: Counter<'event' | 'backend'> = new Counter({
      name: 'nodemesh_capture_events_total',
      help: 'Events counted by the capture back-end (eBPF program counters).',
      labelNames: ['event', 'backend'],
      registers: [registry],
      collect: () => {
        for (const [event, value] of Object.entries(backend.counters())) {
          const delta = value - (seen.get(event) ?? 0);
          if (delta > 0) captureEvents.inc({ event, backend: backend.kind }, delta);
          seen.set(event, value);
        }
      },
    });
  }

  get registry(): Registry {
    return this.runtime.registry;
  }

  get proxy(): NodeProxy {
    return this.runtime.proxy;
  }

  /**
   * Installs (or adopts) capture once the health port is ours, loads the configuration,
   * enrolls pods, releases what no pod owns any more, serves admin.
   */
  async start(): Promise<void> {
    const { options, deps } = this;
    await this.runtime.start({
      afterHealth: async () => {
        await deps.backend.install();
        this.log.info({ backend: deps.backend.kind, node: options.nodeName }, 'capture back-end installed');
      },
      afterFirstApply: () => this.releaseStale(),
    });
    this.retryTimer = setInterval(() => this.retryFailed(), RETRY_FAILED_MS);
    this.retryTimer.unref();
  }

  private async captureReply(): Promise<CaptureReply> {
    const { backend } = this.deps;
    return {
      backend: backend.kind,
      reason: this.options.captureReason ?? '',
      settings: backend.settings,
      counters: backend.counters(),
      namespaces: await backend.enrolled(),
    };
  }

  /** A new configuration: swap the snapshot, then reconcile pods (serialised). */
  apply(result: SourceResult): Promise<void> {
    return this.runtime.apply(result);
  }

  /** Pods that failed for a reason that may pass (sandbox not up yet) are tried again. */
  private retryFailed(): void {
    let any = false;
    for (const [key, record] of this.failed) {
      if (record.code && RETRYABLE.has(record.code)) {
        this.failed.delete(key);
        any = true;
      }
    }
    if (any) void this.runtime.reconcileAgain();
  }

  /** Waits until every queued reconcile has run. */
  settled(): Promise<void> {
    return this.runtime.settled();
  }

  private desired(snapshot: MeshSnapshot): Map<string, PodInfo> {
    const out = new Map<string, PodInfo>();
    for (const pod of snapshot.pods.values()) {
      if (pod.nodeName !== this.options.nodeName) continue;
      const mode = snapshot.effectiveMode(pod, this.options.agentPodKey ? { agentPodKey: this.options.agentPodKey } : {});
      if (mode === 'ambient') out.set(podKey(pod), pod);
    }
    return out;
  }

  /** Captures the desired pods that are not yet, releases those no longer desired. */
  private async reconcile(snapshot: MeshSnapshot): Promise<void> {
    const desired = this.desired(snapshot);
    for (const key of [...this.enrolled.keys()]) {
      const want = desired.get(key);
      const have = this.enrolled.get(key)!;
      if (!want || want.uid !== have.pod.uid || want.ips.join() !== have.pod.ips.join()) await this.release(key);
    }
    for (const key of [...this.failed.keys()]) if (!desired.has(key)) this.failed.delete(key);
    for (const [key, pod] of desired) {
      if (this.enrolled.has(key)) continue;
      const previous = this.failed.get(key);
      // A pod that failed is tried again only when its object changed.
      if (previous && previous.since === this.podFingerprint(pod)) continue;
      await this.enroll(pod);
    }
    this.options.onEnrolled?.([...this.enrolled.values()].map((e) => e.pod));
  }

  private podFingerprint(pod: PodInfo): string {
    return `${pod.uid}|${pod.ips.join(',')}`;
  }

  private async enroll(pod: PodInfo): Promise<void> {
    const key = podKey(pod);
    const { backend, locator, openSandbox } = this.deps;
    let sandbox: PodSandbox | undefined;
    let target: CaptureTarget | undefined;
    let listening = false;
    try {
      const { netnsPath } = await locator.locate(pod);
      sandbox = await openSandbox(netnsPath).catch((err: unknown) => {
        if (hasCode(err, 'ENOENT')) {
          throw new NodemeshError('ERR_NM_POD_NETNS_GONE', `the network namespace of pod ${key} (${netnsPath}) does not exist`, {
            hint: 'the pod was probably deleted or restarted while it was being enrolled; it is skipped',
            cause: err,
          });
        }
        throw err;
      });
      target = { key, netnsPath, netnsCookie: sandbox.netnsCookie, ips: pod.ips };
      // Its certificate first: a pod whose identity cannot be proved is not captured (its
      // 15008 would have nothing to present, its tunnel streams nothing to show).
      await ensurePodCertificate(this.proxy.config.current, this.options.identity, pod);
      const fds = await this.proxy.addPod(pod, sandbox);
      listening = true;
      await backend.enroll(target, fds);
      await probeCapture(sandbox, pod.ips, backend.settings.probePort);
      this.enrolled.set(key, { pod, sandbox, target });
      this.failed.delete(key);
      this.enrollments.inc({ result: 'ok' });
      this.log.info({ pod: key, netns: netnsPath, backend: backend.kind }, 'pod captured');
    } catch (err) {
      // Undo whatever was done, so the pod keeps working exactly as before, uncaptured.
      if (target) await backend.release(target).catch((e: unknown) => this.log.warn({ pod: key, err: describeError(e) }, 'rollback of capture failed'));
      if (listening) await this.proxy.removePod(key, true);
      this.options.identity?.release(key);
      sandbox?.close();
      const code = (err as { code?: string }).code;
      this.failed.set(key, {
        key,
        status: 'failed',
        reason: describeError(err),
        ...(code ? { code } : {}),
        ips: pod.ips,
        since: this.podFingerprint(pod),
      });
      this.enrollments.inc({ result: 'failed' });
      this.log.warn({ pod: key, code, err: describeError(err) }, 'pod left uncaptured');
    }
  }

  private async release(key: string): Promise<void> {
    const entry = this.enrolled.get(key);
    if (!entry) return;
    this.enrolled.delete(key);
    try {
      await this.deps.backend.release(entry.target);
    } catch (err) {
      this.log.warn({ pod: key, err: describeError(err) }, 'releasing capture failed');
    }
    await this.proxy.removePod(key);
    this.options.identity?.release(key);
    entry.sandbox.close();
    this.log.info({ pod: key }, 'pod released');
  }

  /** After a restart: namespaces the pinned state captures but no current pod owns. */
  private async releaseStale(): Promise<void> {
    const live = new Set([...this.enrolled.values()].map((e) => e.target.netnsCookie));
    for (const ns of await this.deps.backend.enrolled()) {
      if (live.has(ns.netnsCookie)) continue;
      this.log.info({ netnsCookie: ns.netnsCookie.toString() }, 'releasing a namespace no current pod owns');
      await this.deps.backend.release({ key: `(stale netns ${ns.netnsCookie})`, netnsPath: '', netnsCookie: ns.netnsCookie, ips: [] });
    }
  }

  podRecords(): PodRecord[] {
    const out: PodRecord[] = [];
    for (const [key, e] of this.enrolled) {
      out.push({
        key, status: 'enrolled', netnsPath: e.target.netnsPath, netnsCookie: e.target.netnsCookie.toString(), ips: e.pod.ips, since: this.podFingerprint(e.pod),
        ...podCertificateFields(this.proxy.config.current, this.options.identity, e.pod),
      });
    }
    out.push(...this.failed.values());
    return out.sort((a, b) => a.key.localeCompare(b.key));
  }

  /**
   * Stops serving, bounded (Runtime.stop): not ready at once, the reconcile in progress
   * gets its wait, the proxy drains for drainMs (or until `cut`). Capture stays installed
   * for the next agent (which adopts it) unless `releaseAll`, which releases every pod
   * first (uninstall, `sim down`).
   */
  async stop(releaseAll = false, cut?: AbortSignal): Promise<void> {
    if (this.retryTimer) clearInterval(this.retryTimer);
    this.options.identity?.stop();
    await this.runtime.stop(cut, {
      beforeDrain: async () => {
        if (releaseAll) for (const key of [...this.enrolled.keys()]) await this.release(key);
      },
      afterDrain: async () => {
        for (const e of this.enrolled.values()) e.sandbox.close();
        this.enrolled.clear();
        if (releaseAll) await this.deps.backend.uninstall();
        else this.deps.backend.close();
      },
    });
  }
}
