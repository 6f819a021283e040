/**
 * Maps for snapshots built from the previous one (MeshSnapshot.from with a `previous`): a
 * write never touches the previous map. The result of a few writes is a LayeredMap, the
 * previous map's flat base with a small overlay of the changed keys (copying a map of
 * 10,000 pods for each change would cost more than the change); once the overlay grows
 * past a quarter of the base it is flattened into a new map, so lookups stay two map reads
 * at most and the copying is amortised over the changes. A map nobody writes stays the
 * previous snapshot's own object, shared.
 */
const REMOVED: unique symbol = Symbol('removed');
type Layer<K, V> = ReadonlyMap<K, V | typeof REMOVED>;

/** Flatten the overlay once it holds more than this share of the base (and at least MIN_FLATTEN keys). */
const FLATTEN_SHARE = 0.25;
const MIN_FLATTEN = 64;

export class LayeredMap<K, V> implements ReadonlyMap<K, V> {
  constructor(
    readonly base: ReadonlyMap<K, V>,
    readonly overlay: Layer<K, V>,
    readonly size: number,
  ) {
    Object.freeze(this);
  }

  get(key: K): V | undefined {
    const v = this.overlay.get(key);
    if (v === undefined) return this.overlay.has(key) ? undefined : this.base.get(key);
    return v === REMOVED ? undefined : v;
  }

  has(key: K): boolean {
    const v = this.overlay.get(key);
    if (v === undefined && !this.overlay.has(key)) return this.base.has(key);
    return v !== REMOVED;
  }

  *entries(): MapIterator<[K, V]> {
    for (const entry of this.base) if (!this.overlay.has(entry[0])) yield entry;
    for (const [k, v] of this.overlay) if (v !== REMOVED) yield [k, v];
  }

  *keys(): MapIterator<K> {
    for (const [k] of this.entries()) yield k;
  }

  *values(): MapIterator<V> {
    for (const [, v] of this.entries()) yield v;
  }

  forEach(callback: (value: V, key: K, map: ReadonlyMap<K, V>) => void, thisArg?: unknown): void {
    for (const [k, v] of this.entries()) callback.call(thisArg, v, k, this);
  }

  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.entries();
  }
}

export class CowMap<K, V> {
  private readonly base: ReadonlyMap<K, V>;
  private overlay: Map<K, V | typeof REMOVED> | undefined;

  constructor(private readonly previous: ReadonlyMap<K, V>) {
    this.base = previous instanceof LayeredMap ? (previous.base as ReadonlyMap<K, V>) : previous;
    if (previous instanceof LayeredMap) this.overlay = new Map(previous.overlay as Layer<K, V>);
  }

  get(key: K): V | undefined {
    const v = this.overlay?.get(key);
    if (v === undefined) return this.overlay?.has(key) ? undefined : this.base.get(key);
    return v === REMOVED ? undefined : v;
  }

  has(key: K): boolean {
    return this.get(key) !== undefined;
  }

  set(key: K, value: V): void {
    this.writes().set(key, value);
  }

  delete(key: K): void {
    if (this.has(key)) this.writes().set(key, REMOVED);
  }

  /** The result: the previous map itself when nothing was written. */
  done(): ReadonlyMap<K, V> {
    if (this.overlay === undefined || !this.written) return this.previous;
    let size = this.base.size;
    const overlay = new Map<K, V | typeof REMOVED>();
    for (const [k, v] of this.overlay) {
      const inBase = this.base.has(k);
      if (v === REMOVED) {
        if (!inBase) continue; // removed again before anyone saw it
        size--;
      } else if (!inBase) size++;
      overlay.set(k, v);
    }
    if (overlay.size > Math.max(MIN_FLATTEN, this.base.size * FLATTEN_SHARE)) {
      const flat = new Map<K, V>();
      for (const [k, v] of this.base) if (!overlay.has(k)) flat.set(k, v);
      for (const [k, v] of overlay) if (v !== REMOVED) flat.set(k, v);
      return flat;
    }
    return new LayeredMap(this.base, overlay, size);
  }

  private written = false;

  private writes(): Map<K, V | typeof REMOVED> {
    this.written = true;
    this.overlay ??= new Map();
    return this.overlay;
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
