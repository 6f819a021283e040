/** The Gateway API group, and the group of an apiVersion ("" for the core group). */

export const GATEWAY_GROUP = 'gateway.networking.k8s.io';

export function apiGroup(apiVersion: string): string {
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? '' : apiVersion.slice(0, slash);
}
