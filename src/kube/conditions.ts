/** What every status condition nodemesh writes obeys (metav1.Condition). */

/** Kubernetes condition messages are at most 32768 characters. */
export const MAX_CONDITION_MESSAGE = 32768;

/** metav1.Time: RFC 3339, whole seconds. */
export function kubeTime(date: Date): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}
