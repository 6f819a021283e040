import type { CaptureSettings } from './settings';

export type CaptureKind = 'ebpf' | 'iptables';

/** A pod as a capture back-end needs to see it. */
export interface CaptureTarget {
  /** namespace/name, for messages. */
  key: string;
  /** The pod's network namespace file (/run/netns/NAME or /proc/PID/ns/net). */
  netnsPath: string;
  /** SO_NETNS_COOKIE of that namespace: the eBPF programs' key for it. */
  netnsCookie: bigint;
  /** The pod's IPs (inbound capture is keyed by them). */
  ips: string[];
}

/** The proxy's listening sockets inside a pod, as descriptors (owned by the proxy). */
export interface PodListenerFds {
  /** 15001, one per family. */
  outbound: Array<{ family: 4 | 6; fd: number }>;
  /** 15006, one per family. */
  inbound: Array<{ family: 4 | 6; fd: number }>;
}

/** What a back-end knows about one enrolled namespace (for status and adoption). */
export interface EnrolledNamespace {
  netnsCookie: bigint;
  outbound: boolean;
  inbound: boolean;
}

/**
 * A capture back-end: redirects the TCP traffic of enrolled pods to the proxy's in-pod
 * listeners. Enrolment must be idempotent (adoption after a restart enrolls again what
 * is already enrolled) and release must leave the pod exactly as it was.
 */
export interface CaptureBackend {
  readonly kind: CaptureKind;
  readonly settings: CaptureSettings;
  /** Node-level set-up, or adoption of what a previous agent left pinned. */
  install(): Promise<void>;
  /** Starts capturing the pod into the given listeners. */
  enroll(target: CaptureTarget, listeners: PodListenerFds): Promise<void>;
  /** Stops capturing; the pod's next connections go direct. */
  release(target: CaptureTarget): Promise<void>;
  /** Namespaces this back-end currently captures (eBPF: from the pinned map). */
  enrolled(): Promise<EnrolledNamespace[]>;
  /** Back-end counters for metrics and tests. */
  counters(): Record<string, number>;
  /** Lets go of descriptors; capture state stays in place for the next agent. */
  close(): void;
  /** Removes every trace from the node: detaches programs, unpins, deletes rules. */
  uninstall(): Promise<void>;
}
