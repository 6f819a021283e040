import type { Registry } from 'prom-client';
import type { CaptureSettings } from '../capture/settings';
import type { PodListenerFds } from '../capture/backend';
import { logger } from '../log';
import { ConnectionLog } from './connection-log';
import type { DestinationView } from './destination';
import { ProxyMetrics } from './metrics';
import type { PodNetwork } from './pod-network';
import { PodProxy, type PodIdentity } from './pod-proxy';

/**
 * The one proxy of a node: a PodProxy per enrolled pod, sharing the connection log, the
 * metrics and the current mesh snapshot. Adding or removing a pod touches only that pod.
 */
export class NodeProxy {
  readonly log = new ConnectionLog();
  readonly metrics: ProxyMetrics;
  private readonly pods = new Map<string, PodProxy>();
  private readonly logger = logger('proxy');

  constructor(
    registry: Registry,
    private readonly settings: CaptureSettings,
    private readonly view: () => DestinationView,
  ) {
    this.metrics = new ProxyMetrics(registry);
  }

  /** Starts the pod's listeners (replacing any it had) and returns their descriptors. */
  async addPod(pod: PodIdentity, network: PodNetwork): Promise<PodListenerFds> {
    const key = `${pod.namespace}/${pod.name}`;
    await this.removePod(key);
    const proxy = new PodProxy({
      pod,
      network,
      settings: this.settings,
      view: this.view,
      log: this.log,
      metrics: this.metrics,
      logger: this.logger.child({ pod: key }),
    });
    const fds = await proxy.start();
    this.pods.set(key, proxy);
    return fds;
  }

  async removePod(key: string, abort = false): Promise<void> {
    const proxy = this.pods.get(key);
    if (!proxy) return;
    this.pods.delete(key);
    await proxy.stop(abort);
  }

  has(key: string): boolean {
    return this.pods.has(key);
  }

  activeConnections(): number {
    let n = 0;
    for (const p of this.pods.values()) n += p.activeConnections;
    return n;
  }

  /** Stops every listener; open connections may finish until `graceMs`, then are cut. */
  async close(graceMs = 0): Promise<void> {
    const keys = [...this.pods.keys()];
    const proxies = keys.map((k) => this.pods.get(k)!);
    this.pods.clear();
    await Promise.all(proxies.map((p) => p.stop(false)));
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline && proxies.some((p) => p.activeConnections > 0)) {
      await new Promise((r) => setTimeout(r, 50));
    }
    await Promise.all(proxies.map((p) => p.stop(true)));
  }
}
