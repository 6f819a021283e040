import { AuthenticationV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { describeError, NodemeshError } from '../errors';
import { CA_AUDIENCE, type AgentAuthenticator, type AuthenticatedAgent, type PodOnRecord, type PodRegistry } from '../identity/agent-authentication';
import { kubeRequest } from './api-deadline';

/** The extra the API server adds to a token bound to a pod: the node that pod runs on (Kubernetes 1.32+). */
const NODE_NAME_EXTRA = 'authentication.kubernetes.io/node-name';
/** ... and the pod itself: a workload's token (a sidecar's) gets that pod's certificate only. */
const POD_NAME_EXTRA = 'authentication.kubernetes.io/pod-name';

/**
 * The cluster CA's agent authentication: a TokenReview for the CA's audience only (a token
 * minted for anything else — the API server's default audience included — is refused),
 * from the allowed service account, bound to a pod on a node; the node is the one the API
 * server says, never one the agent claims (as istiod authenticates ztunnel).
 */
export class TokenReviewAuthenticator implements AgentAuthenticator {
  private readonly api: AuthenticationV1Api;

  constructor(kubeConfig: KubeConfig, private readonly allowedServiceAccounts: readonly string[]) {
    this.api = kubeConfig.makeApiClient(AuthenticationV1Api);
  }

  async authenticate(token: string): Promise<AuthenticatedAgent> {
    let review;
    try {
      review = await kubeRequest(this.api.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [CA_AUDIENCE] } } }), 'TokenReview', 10_000);
    } catch (err) {
      throw new NodemeshError('ERR_NM_CA_INTERNAL', `TokenReview failed: ${describeError(err)}`, { hint: 'the CA needs create on tokenreviews.authentication.k8s.io (the chart\'s ClusterRole)', cause: err });
    }
    const status = review.status ?? {};
    if (!status.authenticated) throw unauthenticated(status.error || 'the API server did not authenticate it');
    if (!(status.audiences ?? []).includes(CA_AUDIENCE)) throw unauthenticated(`it is not for audience ${CA_AUDIENCE}`);
    const username = status.user?.username ?? '';
    const node = status.user?.extra?.[NODE_NAME_EXTRA]?.[0];
    if (!node) throw unauthenticated('it is not bound to a pod on a node (no node-name in the token)');
    if (this.allowedServiceAccounts.includes(username)) return { node, subject: username };
    // Any other service account: a workload's own token (a sidecar's), good for its pod only.
    const sa = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(username);
    const podName = status.user?.extra?.[POD_NAME_EXTRA]?.[0];
    if (!sa || !podName) throw unauthenticated(`${username || 'its user'} is neither an agent's service account (${this.allowedServiceAccounts.join(', ')}) nor a service account token bound to a pod`);
    return { node, subject: username, pod: { namespace: sa[1]!, name: podName, serviceAccount: sa[2]! } };
  }
}

/** Pods as the API server has them, for the CA's node check. */
export class ApiPodRegistry implements PodRegistry {
  private readonly api: CoreV1Api;

  constructor(kubeConfig: KubeConfig) {
    this.api = kubeConfig.makeApiClient(CoreV1Api);
  }

  async get(namespace: string, name: string): Promise<PodOnRecord | undefined> {
    try {
      const pod = await kubeRequest(this.api.readNamespacedPod({ namespace, name }), `get pod ${namespace}/${name}`, 10_000);
      const phase = pod.status?.phase;
      return {
        namespace,
        name,
        nodeName: pod.spec?.nodeName,
        serviceAccount: pod.spec?.serviceAccountName || 'default',
        terminated: phase === 'Succeeded' || phase === 'Failed',
      };
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    }
  }
}

function unauthenticated(reason: string): NodemeshError {
  return new NodemeshError('ERR_NM_CA_UNAUTHENTICATED', `agent not authenticated: ${reason}`, { hint: 'the agent needs a projected service-account token for audience nodemesh-ca (the chart mounts one)' });
}
