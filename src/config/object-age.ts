import { describeValue, type Problems } from './validation';

/**
 * Which of two policy objects is older, as Istio and Gateway API break ties between
 * objects that claim the same thing: the oldest creationTimestamp wins; an object with one
 * is older than an object without (a file of the directory source); then the name.
 */

export interface ObjectAge {
  /** creationTimestamp in ms, when the object has one. */
  createdMs: number | undefined;
  name: string;
}

/** Reads metadata.creationTimestamp (a string, or a Date from the Kubernetes client). */
export function creationTime(problems: Problems, value: unknown): { iso?: string; ms?: number } {
  if (value === undefined || value === null) return {};
  const ms = value instanceof Date ? value.getTime() : typeof value === 'string' ? Date.parse(value) : NaN;
  if (!Number.isFinite(ms)) {
    problems.fail('metadata.creationTimestamp', `must be an RFC 3339 time such as "2024-05-01T10:00:00Z", got ${describeValue(value)}`);
    return {};
  }
  return { iso: new Date(ms).toISOString(), ms };
}

/** True when `a` is older than `b`. */
export function olderThan(a: ObjectAge, b: ObjectAge): boolean {
  if (a.createdMs !== undefined && b.createdMs === undefined) return true;
  if (a.createdMs === undefined && b.createdMs !== undefined) return false;
  if (a.createdMs !== undefined && b.createdMs !== undefined && a.createdMs !== b.createdMs) return a.createdMs < b.createdMs;
  return a.name < b.name;
}

/** Why `winner` (older) applies rather than `loser`, for the loser's rejection. */
export function whyOlder(winner: ObjectAge & { iso?: string }, loser: ObjectAge): string {
  if (winner.createdMs !== undefined && loser.createdMs !== undefined && winner.createdMs !== loser.createdMs) return `it was created earlier (${winner.iso ?? new Date(winner.createdMs).toISOString()})`;
  if (winner.createdMs !== undefined && loser.createdMs === undefined) return 'it has a creationTimestamp and this one has none';
  return 'neither is older and its name sorts first';
}
