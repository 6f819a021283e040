/**
 * RFC 9110 §9.2.2 idempotent methods: the ones a proxy may retry without the client
 * asking. Methods are case-sensitive ("get" is not GET).
 */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

export function isIdempotent(method: string): boolean {
  return IDEMPOTENT.has(method);
}
