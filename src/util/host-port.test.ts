import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatHostPort } from './host-port';

test('formatHostPort: IPv4 and names as they are, IPv6 in brackets, once', () => {
  assert.equal(formatHostPort('10.0.0.1', 80), '10.0.0.1:80');
  assert.equal(formatHostPort('b.demo.svc.cluster.local', 8080), 'b.demo.svc.cluster.local:8080');
  assert.equal(formatHostPort('fd00::1', 80), '[fd00::1]:80');
  assert.equal(formatHostPort('::ffff:10.0.0.1', 443), '[::ffff:10.0.0.1]:443');
  assert.equal(formatHostPort('[fd00::1]', 80), '[fd00::1]:80', 'already bracketed: not bracketed again');
  assert.equal(formatHostPort('127.0.0.1', 0), '127.0.0.1:0');
});
