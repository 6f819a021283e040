/**
 * A bounded map with least-recently-used eviction, approximated the CLOCK way: a hit only
 * sets a flag (moving the entry on every hit, a Map delete + set, cost more than the rest
 * of recordRequest together); when full, the oldest entries that were hit since they were
 * last looked at get a second chance at the young end, and the first one that was not is
 * evicted. Never holds more than `capacity` entries.
 */
export class LruCache<V> {
  private readonly map = new Map<string, { value: V; hit: boolean }>();
  constructor(readonly capacity: number) {
    if (!(capacity >= 1)) throw new RangeError(`LRU capacity must be at least 1, got ${capacity}`);
  }
  get(key: string): V | undefined {
    const e = this.map.get(key);
    if (e === undefined) return undefined;
    e.hit = true;
    return e.value;
  }
  set(key: string, value: V): void {
    const existing = this.map.get(key);
    if (existing !== undefined) {
      existing.value = value;
      existing.hit = true;
      return;
    }
    if (this.map.size >= this.capacity) this.evictOne();
    this.map.set(key, { value, hit: false });
  }
  has(key: string): boolean {
    return this.map.has(key);
  }
  clear(): void {
    this.map.clear();
  }
  get size(): number {
    return this.map.size;
  }
  private evictOne(): void {
    // At most one full turn: after it every flag is clear, so this ends.
    for (let turns = 0; turns <= this.map.size; turns++) {
      const oldest = this.map.entries().next().value as [string, { value: V; hit: boolean }];
      this.map.delete(oldest[0]);
      if (!oldest[1].hit) return;
      oldest[1].hit = false;
      this.map.set(oldest[0], oldest[1]);
    }
  }
}
