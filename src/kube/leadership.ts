/**
 * Whether this agent is the one that writes to the cluster (statuses, Events), and when
 * that changes. LeaderElection implements it; the status writer and the Kubernetes source
 * only read it, so tests can hand them a plain object.
 */
export interface Leadership {
  readonly isLeader: boolean;
  /** Calls `listener` after every change of isLeader; returns a function that unsubscribes. */
  onChange(listener: (leading: boolean) => void): () => void;
}
