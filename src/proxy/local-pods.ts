import type { PodInfo } from '../mesh/model';
import type { PodNetwork } from '../datapath/pod-network';

/** An enrolled pod of this node, with the network its sockets are made in. */
export interface LocalPod {
  readonly key: string;
  readonly pod: PodInfo;
  readonly network: PodNetwork;
}

/**
 * The pods this node's proxy serves, by key and by IP. Outbound asks it whether an
 * endpoint is local (in-process hand-over); inbound, whether a stream's target may be
 * delivered here. `generation` changes with every add and remove, so answers cached
 * from it can tell when they are stale.
 */
export class LocalPods {
  private readonly byKey = new Map<string, LocalPod>();
  private readonly byIP = new Map<string, LocalPod>();
  private gen = 0;

  get generation(): number {
    return this.gen;
  }

  add(entry: LocalPod): void {
    this.byKey.set(entry.key, entry);
    for (const ip of entry.pod.ips) this.byIP.set(ip, entry);
    this.gen++;
  }

  /** Removes the pod; returns its entry when it was there. */
  remove(key: string): LocalPod | undefined {
    const entry = this.byKey.get(key);
    if (!entry) return undefined;
    this.byKey.delete(key);
    for (const ip of entry.pod.ips) if (this.byIP.get(ip) === entry) this.byIP.delete(ip);
    this.gen++;
    return entry;
  }

  get(key: string): LocalPod | undefined {
    return this.byKey.get(key);
  }

  byAddress(ip: string): LocalPod | undefined {
    return this.byIP.get(ip);
  }

  /** Removes every pod (the drain). */
  clear(): void {
    this.byKey.clear();
    this.byIP.clear();
    this.gen++;
  }
}
