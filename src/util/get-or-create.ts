/** What Map and WeakMap have in common, for getOrCreate. */
interface KeyedStore<K, V> {
  get(key: K): V | undefined;
  set(key: K, value: V): unknown;
}

/**
 * The value under `key`, made by `create` and stored on first use. For nested caches on
 * hot paths: pass a module-level `create` (such as `newMap`) so no closure is made per call.
 */
export function getOrCreate<K, V>(store: KeyedStore<K, V>, key: K, create: () => V): V {
  let value = store.get(key);
  if (value === undefined) {
    value = create();
    store.set(key, value);
  }
  return value;
}

export function newMap<K, V>(): Map<K, V> {
  return new Map<K, V>();
}

export function newWeakMap<K extends object, V>(): WeakMap<K, V> {
  return new WeakMap<K, V>();
}
