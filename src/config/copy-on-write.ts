/**
 * Copy-on-write maps for snapshots built from the previous one (MeshSnapshot.from with a
 * `previous`): the first write copies the previous map (a shallow copy, never the values),
 * and a map nobody writes stays the previous snapshot's own object, shared. The previous
 * map is never modified, so a snapshot in use keeps what it had.
 */
export class CowMap<K, V> {
  private map: Map<K, V> | undefined;

  constructor(private readonly base: ReadonlyMap<K, V>) {}

  get(key: K): V | undefined {
    return (this.map ?? this.base).get(key);
  }

  has(key: K): boolean {
    return (this.map ?? this.base).has(key);
  }

  set(key: K, value: V): void {
    this.writable().set(key, value);
  }

  delete(key: K): void {
    if (this.has(key)) this.writable().delete(key);
  }

  /** The result: the previous map itself when nothing was written. */
  done(): ReadonlyMap<K, V> {
    return this.map ?? this.base;
  }

  private writable(): Map<K, V> {
    this.map ??= new Map(this.base);
    return this.map;
  }
}

/**
 * key -> the objects holding it (a pod IP, a cluster IP), sorted by their own key so the
 * winner of a shared key (`first`) does not depend on the order in which objects came.
 */
export class HolderIndex<T> {
  private readonly map: CowMap<string, readonly T[]>;

  constructor(
    base: ReadonlyMap<string, readonly T[]>,
    private readonly keyOf: (value: T) => string,
  ) {
    this.map = new CowMap(base);
  }

  add(key: string, value: T): void {
    const k = this.keyOf(value);
    const list = [...(this.map.get(key) ?? []).filter((v) => this.keyOf(v) !== k), value];
    list.sort((a, b) => compareStrings(this.keyOf(a), this.keyOf(b)));
    this.map.set(key, Object.freeze(list));
  }

  remove(key: string, value: T): void {
    const list = this.map.get(key);
    if (!list) return;
    const next = list.filter((v) => v !== value);
    if (next.length === list.length) return;
    if (next.length === 0) this.map.delete(key);
    else this.map.set(key, Object.freeze(next));
  }

  done(): ReadonlyMap<string, readonly T[]> {
    return this.map.done();
  }
}

export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
