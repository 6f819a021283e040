import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NewItems } from './new-items';

test('only items that were not in the previous list are new; one that goes and comes back is new again', () => {
  const items = new NewItems<{ reason: string }>((i) => i.reason);
  assert.deepEqual(items.next([{ reason: 'a' }, { reason: 'b' }, { reason: 'a' }]).map((i) => i.reason), ['a', 'b']);
  assert.deepEqual(items.next([{ reason: 'a' }, { reason: 'b' }]), []);
  assert.deepEqual(items.next([{ reason: 'b' }, { reason: 'c' }]).map((i) => i.reason), ['c']);
  assert.deepEqual(items.next([{ reason: 'a' }, { reason: 'b' }, { reason: 'c' }]).map((i) => i.reason), ['a']);
});
