import type { Socket } from 'node:net';
import type { PodNetwork } from './pod-network';

/**
 * A pod's network namespace held open by the agent: the proxy's sockets are made through
 * it, and the agent's capture self-test connects through it as if it were the app.
 */
export interface PodSandbox extends PodNetwork {
  readonly netnsPath: string;
  /** SO_NETNS_COOKIE: the eBPF programs' key for this namespace. */
  readonly netnsCookie: bigint;
  /** A connection from inside the pod WITHOUT the proxy mark, so capture applies to it
   * exactly as to the app's own connections. */
  connectAsApp(options: { family: 4 | 6; address: string; port: number; timeoutMs: number }): Socket;
  /** Lets go of the namespace. */
  close(): void;
}

export type PodSandboxFactory = (netnsPath: string) => Promise<PodSandbox>;
