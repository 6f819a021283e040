import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LruCache } from './lru-cache';

test('LruCache evicts the least recently used entry and never exceeds its capacity', () => {
  const c = new LruCache<number>(3);
  c.set('a', 1);
  c.set('b', 2);
  c.set('c', 3);
  assert.equal(c.get('a'), 1); // a is used: b is now the least recently used
  c.set('d', 4);
  assert.equal(c.size, 3);
  assert.equal(c.has('b'), false);
  assert.equal(c.get('a'), 1);
  assert.equal(c.get('c'), 3);
  assert.equal(c.get('d'), 4);
  for (let i = 0; i < 100; i++) {
    c.set(`k${i}`, i);
    if (i % 3 === 0) c.get(`k${i}`);
    assert.ok(c.size <= 3);
  }
  assert.equal(c.get('k99'), 99);
  assert.throws(() => new LruCache(0), RangeError);
});
