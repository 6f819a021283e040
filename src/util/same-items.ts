/**
 * Two lists with the same items (by reference) in the same order: how incremental builds
 * tell an input that did not change, once the sources keep unchanged objects' references.
 */
export function sameItems<T>(a: readonly T[] | undefined, b: readonly T[] | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
