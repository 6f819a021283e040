import assert from 'node:assert/strict';
import test from 'node:test';
import { CowMap, LayeredMap } from './copy-on-write';

test('CowMap: writes never touch the previous map; few writes layer, many flatten; no write shares', () => {
  const base = new Map(Array.from({ length: 1000 }, (_, i) => [`k${i}`, i] as [string, number]));
  const untouched = new CowMap(base);
  assert.equal(untouched.done(), base, 'nothing written: the same object');

  const w = new CowMap<string, number>(base);
  w.set('k1', -1);
  w.delete('k2');
  w.set('new', 7);
  w.set('gone-again', 8);
  w.delete('gone-again');
  const layered = w.done();
  assert.ok(layered instanceof LayeredMap);
  assert.equal(base.get('k1'), 1, 'the previous map is unchanged');
  assert.equal(base.size, 1000);
  assert.equal(layered.get('k1'), -1);
  assert.equal(layered.has('k2'), false);
  assert.equal(layered.get('k2'), undefined);
  assert.equal(layered.get('new'), 7);
  assert.equal(layered.has('gone-again'), false);
  assert.equal(layered.size, 1000);
  const expected = new Map(base);
  expected.set('k1', -1);
  expected.delete('k2');
  expected.set('new', 7);
  assert.deepEqual(new Map([...layered].sort()), new Map([...expected].sort()));
  assert.deepEqual([...layered.keys()].sort(), [...expected.keys()].sort());

  // A layered map written again keeps one flat base under one overlay, and flattens when the overlay grows.
  const again = new CowMap(layered);
  again.set('k3', -3);
  const second = again.done() as LayeredMap<string, number>;
  assert.equal(second.base, base);
  assert.equal(second.get('k1'), -1, 'the earlier overlay carries over');
  assert.equal(layered.get('k3'), 3, 'and the earlier map is unchanged');
  const many = new CowMap(second);
  for (let i = 0; i < 400; i++) many.set(`k${i}`, -i);
  const flat = many.done();
  assert.ok(flat instanceof Map);
  assert.equal(flat.size, 1001, "k0..k999 and 'new'");
  assert.equal(flat.get('k399'), -399);
  assert.equal(flat.has('k2'), true, 'set again after its removal');
});
