import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { memberObjectOf, memberSpecOf, MEMBER_NODE_LABEL } from '../config/mesh-member';
import { describeError } from '../errors';
import type { Logger } from '../log';
import { podKey, type PodInfo } from '../mesh/model';
import { LatestValuePublisher } from '../util/latest-value-publisher';
import { kubeRequest } from './api-deadline';

const GROUP = 'nodemesh.dev';
const VERSION = 'v1alpha1';
const PLURAL = 'meshmembers';
const REQUEST_MS = 15_000;

interface Written {
  namespace: string;
  name: string;
  /** JSON of the spec as written. */
  spec: string;
}

/**
 * Keeps this node's MeshMember objects equal to the pods the agent has enrolled: one per
 * pod, created when it is captured, deleted when it is released, replaced when its IPs,
 * labels or service account change. The first pass lists what a previous agent of the node
 * left (label nodemesh.dev/node) and reconciles against it. Writes run one pass at a time,
 * the newest set wins, and a pass that fails is retried: members are for the other nodes,
 * so nothing here waits on them.
 */
export class MeshMemberWriter {
  private readonly api: CustomObjectsApi;
  private written: Map<string, Written> | undefined;
  private readonly publisher: LatestValuePublisher<readonly PodInfo[]>;

  constructor(kubeConfig: KubeConfig, private readonly nodeName: string, private readonly log: Logger, retryMs = 5000) {
    this.api = kubeConfig.makeApiClient(CustomObjectsApi);
    this.publisher = new LatestValuePublisher((pods) => this.reconcile(pods), (err, ms) => this.log.warn({ err: describeError(err), retryMs: ms }, 'mesh members not written; retrying'), retryMs);
  }

  /** The pods enrolled now. */
  update(pods: readonly PodInfo[]): void {
    this.publisher.publish(pods.filter((p) => p.nodeName === this.nodeName));
  }

  /** True while a pass is pending or running. */
  get busy(): boolean {
    return this.publisher.busy;
  }

  stop(): void {
    this.publisher.stop();
  }

  /** Uninstall: removes every member of this node (within `timeoutMs`), then stops. */
  async removeAll(timeoutMs: number): Promise<boolean> {
    this.publisher.publish([]);
    const done = await this.publisher.whenWritten(timeoutMs);
    if (!done) this.log.warn({ timeoutMs }, 'mesh members of this node not all removed; their pods\' deletion removes them');
    this.stop();
    return done;
  }

  private async reconcile(pods: readonly PodInfo[]): Promise<void> {
    const written = this.written ?? (await this.listOwn());
    this.written = written;
    const desired = new Map(pods.map((p) => [podKey(p), p]));
    for (const [key, w] of [...written]) {
      if (desired.has(key)) continue;
      await this.call(this.api.deleteNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace: w.namespace, name: w.name }), `delete MeshMember ${key}`, [404]);
      written.delete(key);
    }
    for (const [key, pod] of desired) {
      const spec = JSON.stringify(memberSpecOf(pod));
      if (written.get(key)?.spec === spec) continue;
      const body = memberObjectOf(pod);
      const created = await this.call(this.api.createNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace: pod.namespace, body }), `create MeshMember ${key}`, [409]);
      if (created === 'tolerated') {
        // It exists (a previous agent's, or changed): replace it at its current version.
        const current = (await this.call(this.api.getNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace: pod.namespace, name: pod.name }), `get MeshMember ${key}`)) as { metadata?: { resourceVersion?: string } };
        (body.metadata as Record<string, unknown>).resourceVersion = current.metadata?.resourceVersion;
        await this.call(this.api.replaceNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace: pod.namespace, name: pod.name, body }), `replace MeshMember ${key}`);
      }
      written.set(key, { namespace: pod.namespace, name: pod.name, spec });
    }
    this.log.debug({ members: written.size }, 'mesh members written');
  }

  private async listOwn(): Promise<Map<string, Written>> {
    const list = (await this.call(
      this.api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, labelSelector: `${MEMBER_NODE_LABEL}=${this.nodeName}` }),
      'list MeshMembers of this node',
    )) as { items?: Array<{ metadata?: { name?: string; namespace?: string }; spec?: unknown }> };
    const out = new Map<string, Written>();
    for (const item of list.items ?? []) {
      const namespace = item.metadata?.namespace ?? '';
      const name = item.metadata?.name ?? '';
      out.set(`${namespace}/${name}`, { namespace, name, spec: JSON.stringify(item.spec) });
    }
    return out;
  }

  /** One request with a deadline; the statuses in `tolerate` resolve as 'tolerated'. */
  private async call<T>(request: Promise<T>, what: string, tolerate: number[] = []): Promise<T | 'tolerated'> {
    try {
      return await kubeRequest(request, what, REQUEST_MS);
    } catch (err) {
      if (tolerate.includes((err as { code?: number }).code ?? 0)) return 'tolerated';
      throw err;
    }
  }
}
