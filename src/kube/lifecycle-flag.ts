import { CoreV1Api, Watch, type KubeConfig } from '@kubernetes/client-node';
import { describeError } from '../errors';
import { logger } from '../log';
import { Backoff } from './backoff';
import { kubeRequest } from './api-deadline';

/**
 * The uninstall contract of the Helm chart (deploy/helm/nodemesh/README.md): a ConfigMap
 * whose `uninstalling` key a pre-delete hook sets to "true". The agent watches it by name
 * and, if the last ADDED/MODIFIED event said "true" when SIGTERM comes, releases every pod
 * and removes its pinned state instead of keeping capture for a successor. DELETED events
 * are ignored: Helm deletes the ConfigMap (and the RBAC to read it) before the agents stop.
 */
export class LifecycleFlag {
  private value = false;
  private stopped = false;
  private abort: AbortController | undefined;
  private readonly log = logger('lifecycle');
  private readonly backoff = new Backoff();

  constructor(
    private readonly kc: KubeConfig,
    private readonly namespace: string,
    private readonly name: string,
  ) {}

  get uninstalling(): boolean {
    return this.value;
  }

  /** Reads the ConfigMap once (readiness waits for this), then keeps watching it. */
  async start(): Promise<void> {
    const rv = await this.list();
    void this.watchLoop(rv);
  }

  private async list(): Promise<string | undefined> {
    const api = this.kc.makeApiClient(CoreV1Api);
    const list = await kubeRequest(api.listNamespacedConfigMap({ namespace: this.namespace, fieldSelector: `metadata.name=${this.name}` }), `reading the uninstall flag ConfigMap ${this.namespace}/${this.name}`);
    const item = list.items[0];
    if (item) this.value = item.data?.['uninstalling'] === 'true';
    return list.metadata?.resourceVersion;
  }

  private async watchLoop(resourceVersion: string | undefined): Promise<void> {
    let rv = resourceVersion;
    while (!this.stopped) {
      try {
        await new Promise<void>((resolve, reject) => {
          const watch = new Watch(this.kc);
          watch
            .watch(
              `/api/v1/namespaces/${this.namespace}/configmaps`,
              // The server ends the watch after timeoutSeconds; the loop starts the next one.
              { fieldSelector: `metadata.name=${this.name}`, allowWatchBookmarks: true, timeoutSeconds: WATCH_TIMEOUT_SECONDS, ...(rv ? { resourceVersion: rv } : {}) },
              (type: string, obj: { metadata?: { resourceVersion?: string }; data?: Record<string, string>; code?: number }) => {
                if (type === 'ERROR') {
                  reject(Object.assign(new Error('watch error'), { status: obj.code }));
                  return;
                }
                rv = obj.metadata?.resourceVersion ?? rv;
                if (type === 'ADDED' || type === 'MODIFIED') {
                  const next = obj.data?.['uninstalling'] === 'true';
                  if (next !== this.value) this.log.info({ uninstalling: next }, 'uninstall flag changed');
                  this.value = next;
                }
              },
              (err: unknown) => (err ? reject(err) : resolve()),
            )
            .then((req) => { this.abort = req; }, reject);
        });
        this.backoff.reset();
      } catch (err) {
        if (this.stopped) return;
        if ((err as { status?: number }).status === 410) rv = await this.list().catch(() => undefined);
        this.log.debug({ err: describeError(err) }, 'lifecycle watch failed; retrying');
        await new Promise((r) => setTimeout(r, this.backoff.next()).unref());
      }
    }
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
  }
}

/** Server-side timeout of one watch of the flag. */
const WATCH_TIMEOUT_SECONDS = 300;
