import type { OtherObject } from './objects';
import { objectLabel, rejectionsOf, type FieldProblem, type RejectedObject } from './validation';

/**
 * The objects of one kind among `others`, each parsed on its own: a parser that reports
 * every problem of an object returns them (the object is rejected whole, with each field
 * named), or the parsed value. What the policy kinds (PeerAuthentication,
 * AuthorizationPolicy, XAuthorizationPolicy) share.
 */
export function parseEach<T>(
  others: readonly OtherObject[],
  kind: string,
  isOfKind: (o: OtherObject) => boolean,
  parseOne: (o: OtherObject) => T | FieldProblem[],
): { valid: T[]; rejected: RejectedObject[] } {
  const valid: T[] = [];
  const rejected: RejectedObject[] = [];
  for (const other of others) {
    if (!isOfKind(other)) continue;
    const result = parseOne(other);
    if (Array.isArray(result)) rejected.push(...rejectionsOf(other.file, objectLabel(kind, other.namespace ?? 'default', other.name), result));
    else valid.push(result);
  }
  return { valid, rejected };
}
