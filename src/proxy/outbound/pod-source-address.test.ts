import { test } from 'node:test';
import assert from 'node:assert/strict';
import { podSourceAddress } from './pod-source-address';

test('a loopback source (eBPF capture) is named by the pod address of its family', () => {
  const ips = ['10.244.1.22', 'fd00:244:1::22'];
  assert.equal(podSourceAddress('127.0.0.1', ips), '10.244.1.22');
  assert.equal(podSourceAddress('::ffff:127.0.0.1', ips), '10.244.1.22');
  assert.equal(podSourceAddress('::1', ips), 'fd00:244:1::22');
});

test('any other source is kept as it is', () => {
  assert.equal(podSourceAddress('10.244.1.22', ['10.244.1.22']), '10.244.1.22');
  assert.equal(podSourceAddress('fd00:244:1::22', ['10.244.1.22']), 'fd00:244:1::22');
  assert.equal(podSourceAddress(undefined, ['10.244.1.22']), undefined);
  // No address of that family: nothing better to say than loopback.
  assert.equal(podSourceAddress('::1', ['10.244.1.22']), '::1');
});
