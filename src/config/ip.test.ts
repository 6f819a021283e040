import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalIP, ipInCIDR } from './ip';

test('canonical addresses', () => {
  assert.equal(canonicalIP('10.0.0.1'), '10.0.0.1');
  assert.equal(canonicalIP('FD00:244:1:0:0:0:0:0B'), 'fd00:244:1::b');
  assert.equal(canonicalIP('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1');
  assert.equal(canonicalIP('2001:db8:0:1:1:1:1:1'), '2001:db8:0:1:1:1:1:1');
  assert.equal(canonicalIP('::'), '::');
  assert.equal(canonicalIP('::1'), '::1');
  assert.equal(canonicalIP('::ffff:10.244.1.12'), '10.244.1.12');
  assert.equal(canonicalIP('10.0.0.256'), undefined);
  assert.equal(canonicalIP('nope'), undefined);
});

test('prefix membership', () => {
  assert.ok(ipInCIDR('10.244.1.11', '10.244.1.0/24'));
  assert.ok(!ipInCIDR('10.244.2.11', '10.244.1.0/24'));
  assert.ok(ipInCIDR('fd00:244:1::11', 'fd00:244:1::/64'));
  assert.ok(!ipInCIDR('fd00:244:2::11', 'fd00:244:1::/64'));
  assert.ok(!ipInCIDR('10.244.1.11', 'fd00:244:1::/64'));
});
