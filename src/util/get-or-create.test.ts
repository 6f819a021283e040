import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getOrCreate, newMap, newWeakMap } from './get-or-create';

test('getOrCreate: creates once, then returns the stored value (Map and WeakMap)', () => {
  const outer = new WeakMap<object, Map<string, number[]>>();
  const key = {};
  let made = 0;
  const create = () => {
    made++;
    return [made];
  };
  const inner = getOrCreate(outer, key, newMap<string, number[]>);
  assert.equal(getOrCreate(outer, key, newMap<string, number[]>), inner, 'the same inner map');
  const a = getOrCreate(inner, 'a', create);
  assert.equal(getOrCreate(inner, 'a', create), a);
  assert.deepEqual(a, [1]);
  assert.deepEqual(getOrCreate(inner, 'b', create), [2]);
  assert.equal(made, 2);
  assert.ok(getOrCreate(new Map<string, WeakMap<object, number>>(), 'x', newWeakMap<object, number>) instanceof WeakMap);
});
