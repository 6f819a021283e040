/**
 * Remembers the items of the last call and returns the ones that are new: a problem that
 * stays across many configuration snapshots is logged once, when it appears (and again
 * only after it went away and came back), instead of on every snapshot.
 */
export class NewItems<T> {
  private seen = new Set<string>();

  constructor(private readonly keyOf: (item: T) => string) {}

  /** The items not in the previous call's list; this list becomes the previous one. */
  next(items: readonly T[]): T[] {
    const now = new Set<string>();
    const fresh: T[] = [];
    for (const item of items) {
      const key = this.keyOf(item);
      if (!this.seen.has(key) && !now.has(key)) fresh.push(item);
      now.add(key);
    }
    this.seen = now;
    return fresh;
  }
}
