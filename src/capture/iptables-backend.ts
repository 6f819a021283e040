import type { CaptureBackend, CaptureTarget, EnrolledNamespace, PodListenerFds } from './backend';
import type { CaptureSettings } from './settings';
import { IptablesCapture } from './iptables/iptables-capture';
import type { IptablesBackend } from '../netfilter/iptables';

/**
 * The iptables back-end as the agent sees it: in-pod nat rules per enrolled pod. It has
 * nothing node-wide to install and nothing pinned; the rules live in the pods' namespaces
 * and go with them, and a restarted agent re-applies them idempotently.
 *
 * Unlike eBPF it does not fail open: while no agent listens, REDIRECT sends the pod's
 * connections to a closed port (the same holds for Istio's sidecar iptables mode).
 */
export class IptablesCaptureBackend implements CaptureBackend {
  readonly kind = 'iptables' as const;
  private readonly enrolledPaths = new Map<bigint, string>();

  private constructor(
    readonly settings: CaptureSettings,
    readonly rules: IptablesCapture,
  ) {}

  static async create(settings: CaptureSettings, backend?: IptablesBackend): Promise<IptablesCaptureBackend> {
    return new IptablesCaptureBackend(settings, await IptablesCapture.create(backend ? { backend } : {}));
  }

  async install(): Promise<void> {}

  async enroll(target: CaptureTarget, _listeners: PodListenerFds): Promise<void> {
    await this.rules.enroll(target.netnsPath, this.settings);
    this.enrolledPaths.set(target.netnsCookie, target.netnsPath);
  }

  async release(target: CaptureTarget): Promise<void> {
    const path = target.netnsPath || this.enrolledPaths.get(target.netnsCookie);
    this.enrolledPaths.delete(target.netnsCookie);
    if (path) await this.rules.release(path);
  }

  async enrolled(): Promise<EnrolledNamespace[]> {
    const inbound = this.settings.captureInbound;
    return [...this.enrolledPaths.keys()].map((netnsCookie) => ({ netnsCookie, outbound: true, inbound }));
  }

  counters(): Record<string, number> {
    return {};
  }

  close(): void {}

  async uninstall(): Promise<void> {
    for (const path of this.enrolledPaths.values()) await this.rules.release(path);
    this.enrolledPaths.clear();
  }
}
