/**
 * How the CA learns who is asking, and what it may sign. Two implementations each: the
 * local CA of the simulator and `--source` mode (tokens it minted itself, pods of the
 * configuration directory: local-*.ts), and the cluster's (TokenReview and the API
 * server's pods: kube/). The signing decision is the same code for both (ca-server.ts).
 */

/** An agent, as its token proved it: the node it runs on. */
export interface AuthenticatedAgent {
  node: string;
  /** Who the token names (a service account, or the local token's subject), for the log. */
  subject: string;
  /**
   * Set for a workload's own token (a sidecar's: bound to its pod): the caller may get the
   * certificate of that pod only, never of another pod of its node.
   */
  pod?: { namespace: string; name: string; serviceAccount: string };
}

export interface AgentAuthenticator {
  /** Rejects (ERR_NM_CA_UNAUTHENTICATED) a token that is invalid, expired or for another audience. */
  authenticate(token: string): Promise<AuthenticatedAgent>;
}

/** A pod as the API server (or the configuration) knows it, for the node check. */
export interface PodOnRecord {
  namespace: string;
  name: string;
  nodeName: string | undefined;
  serviceAccount: string;
  /** Succeeded/Failed pods have no identity to get. */
  terminated: boolean;
}

export interface PodRegistry {
  /** The pod, or undefined when it does not exist. */
  get(namespace: string, name: string): Promise<PodOnRecord | undefined>;
}

/** The audience an agent's token must be for: a token for anything else is refused. */
export const CA_AUDIENCE = 'nodemesh-ca';
