import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pickWeighted } from './backends';
import { mulberry32 } from '../policy/client/random';

test('a 90/10 split over 10,000 picks lands within ±1%', () => {
  const items = [
    { name: 'stable', weight: 90 },
    { name: 'canary', weight: 10 },
  ];
  for (const seed of [1, 42, 2024]) {
    const random = mulberry32(seed);
    const counts = { stable: 0, canary: 0 };
    for (let i = 0; i < 10_000; i++) counts[pickWeighted(items, random)!.name as 'stable' | 'canary']++;
    assert.ok(Math.abs(counts.stable / 10_000 - 0.9) <= 0.01, `seed ${seed}: stable ${counts.stable}`);
    assert.ok(Math.abs(counts.canary / 10_000 - 0.1) <= 0.01, `seed ${seed}: canary ${counts.canary}`);
  }
});

test('pickWeighted maps the random number onto cumulative weights', () => {
  const items = [{ id: 'a', weight: 1 }, { id: 'b', weight: 0 }, { id: 'c', weight: 3 }];
  assert.equal(pickWeighted(items, () => 0)!.id, 'a');
  assert.equal(pickWeighted(items, () => 0.2499)!.id, 'a');
  assert.equal(pickWeighted(items, () => 0.25)!.id, 'c');
  assert.equal(pickWeighted(items, () => 0.999999)!.id, 'c');
  // A misbehaving source cannot select past the end nor pick a zero weight.
  assert.equal(pickWeighted(items, () => 1)!.id, 'c');
  assert.equal(pickWeighted(items, () => -5)!.id, 'a');
});

test('weight 0 is never picked; all zero or empty gives undefined', () => {
  const items = [{ id: 'off', weight: 0 }, { id: 'on', weight: 5 }, { id: 'off2', weight: 0 }];
  const random = mulberry32(7);
  for (let i = 0; i < 1000; i++) assert.equal(pickWeighted(items, random)!.id, 'on');
  assert.equal(pickWeighted([{ weight: 0 }, { weight: 0 }]), undefined);
  assert.equal(pickWeighted([{ weight: 0 }]), undefined);
  assert.equal(pickWeighted([]), undefined);
  const one = { weight: 1 };
  assert.equal(pickWeighted([one]), one);
});
