import type { CaptureKind, EnrolledNamespace } from '../capture/backend';
import type { CaptureSettings } from '../capture/settings';

/*
 * The JSON shapes of the admin API's /debug routes that other processes read: `nodemesh
 * status`, the simulator and the tests. They live here, beside the server and the client,
 * so that a reader of a reply does not import the agent or the sidecar that writes it.
 */

export type PodStatus = 'enrolled' | 'failed';

/** One of the agent's pods in /debug/pods. */
export interface PodRecord {
  key: string;
  status: PodStatus;
  /** Why it failed, with what to check. */
  reason?: string;
  code?: string;
  netnsPath?: string;
  netnsCookie?: string;
  ips: string[];
  since: string;
  /** The pod's SPIFFE ID and its certificate's expiry (ISO 8601), when it holds one. */
  identity?: string;
  certificateExpiry?: string;
}

export type SidecarStatus = 'waiting' | 'enrolled' | 'failed' | 'draining';

/** The sidecar's one pod, in the shape of the agent's /debug/pods records. */
export interface SidecarPodRecord {
  key: string;
  status: SidecarStatus;
  reason?: string;
  ips: string[];
  since: string;
  /** The pod's SPIFFE ID and its certificate's expiry (ISO 8601), when it holds one. */
  identity?: string;
  certificateExpiry?: string;
}

/** /debug/capture: the back-end, why it was chosen, and what it captures. */
export interface CaptureReply {
  backend: CaptureKind;
  reason: string;
  /** 'sidecar' when the capture rules are the pod's own (no agent). */
  mode?: 'sidecar';
  settings: CaptureSettings;
  counters: Record<string, number>;
  namespaces: EnrolledNamespace[];
}
