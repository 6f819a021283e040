import { Watch, type KubeConfig } from '@kubernetes/client-node';
import { describeError } from '../errors';
import { NAMESPACE_KIND } from '../kinds/namespace';
import type { Logger } from '../log';
import { publishTrustBundle } from './ca-secret';
import { Reflector } from './reflector';
import { kubeResource, makeLister } from './resources';

/** A namespace whose ConfigMap could not be written is tried again this often. */
const RETRY_MS = 10_000;

/**
 * The trust bundle in every namespace, as a ConfigMap (`ca.crt`), as istiod keeps
 * istio-ca-root-cert: an injected sidecar mounts it from its own pod's namespace to trust
 * the CA and its peers. Namespaces are listed and watched; a new one gets the bundle when
 * it appears, every one gets a new bundle when the roots change (a rotation), and a write
 * that fails (a namespace being deleted, an API outage) is tried again later, never in a
 * tight loop.
 */
export class TrustBundleDistributor {
  private readonly reflector: Reflector;
  private pem: string | undefined;
  /** namespace -> the bundle last written there. */
  private readonly written = new Map<string, string>();
  private running = false;
  private again = false;
  private retry: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly kubeConfig: KubeConfig, private readonly name: string, private readonly log: Logger) {
    const resource = kubeResource(NAMESPACE_KIND.resource);
    this.reflector = new Reflector({
      resource,
      lister: makeLister(kubeConfig, resource),
      watch: new Watch(kubeConfig),
      log,
      onChange: () => this.sync(),
      onSynced: () => this.sync(),
      onError: (err) => log.warn({ err: describeError(err) }, 'watching namespaces failed; retrying'),
    });
  }

  start(): void {
    this.reflector.start();
  }

  /** The bundle to distribute (every namespace gets it, now and as namespaces appear). */
  publish(pem: string): void {
    this.pem = pem;
    this.sync();
  }

  /** Namespaces whose ConfigMap holds the current bundle (for tests and logs). */
  distributedTo(): string[] {
    return [...this.written].filter(([, pem]) => pem === this.pem).map(([ns]) => ns).sort();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    await this.reflector.stop();
  }

  /** One pass at a time; a change during a pass runs another after it. */
  private sync(): void {
    if (this.stopped || this.pem === undefined || !this.reflector.synced) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    void this.pass(this.pem).finally(() => {
      this.running = false;
      if (this.again) {
        this.again = false;
        this.sync();
      }
    });
  }

  private async pass(pem: string): Promise<void> {
    const namespaces = new Set<string>();
    for (const ns of this.reflector.store.values()) {
      const meta = (ns.metadata ?? {}) as { name?: string; deletionTimestamp?: string };
      const status = (ns.status ?? {}) as { phase?: string };
      // A namespace on its way out accepts no new objects.
      if (meta.name && !meta.deletionTimestamp && status.phase !== 'Terminating') namespaces.add(meta.name);
    }
    for (const ns of this.written.keys()) if (!namespaces.has(ns)) this.written.delete(ns);
    let failed = 0;
    for (const namespace of [...namespaces].sort()) {
      if (this.stopped) return;
      if (this.written.get(namespace) === pem) continue;
      try {
        await publishTrustBundle(this.kubeConfig, { namespace, name: this.name }, pem);
        this.written.set(namespace, pem);
      } catch (err) {
        failed += 1;
        this.log.warn({ namespace, configMap: this.name, err: describeError(err) }, 'trust bundle not written to this namespace; trying again later');
      }
    }
    if (failed > 0 && !this.retry && !this.stopped) {
      this.retry = setTimeout(() => {
        this.retry = undefined;
        this.sync();
      }, RETRY_MS);
      this.retry.unref();
    }
  }
}
