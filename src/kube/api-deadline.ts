import { withDeadline } from '../util/deadline';

/** How long one request to the Kubernetes API may take (a LIST page, a PATCH, an Event). */
export const KUBE_REQUEST_TIMEOUT_MS = 60_000;

/**
 * One Kubernetes API request with a deadline: an API server that accepts the connection
 * and never answers must not stall the agent's status writes or its shutdown.
 */
export function kubeRequest<T>(request: Promise<T>, what: string, timeoutMs = KUBE_REQUEST_TIMEOUT_MS): Promise<T> {
  return withDeadline(request, timeoutMs, what, 'check that the API server is reachable and healthy (kubectl get --raw /readyz)');
}
