import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIdempotent } from './idempotent';

test('idempotent methods are GET HEAD OPTIONS TRACE PUT DELETE, case-sensitively', () => {
  for (const m of ['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']) assert.equal(isIdempotent(m), true, m);
  for (const m of ['POST', 'PATCH', 'CONNECT', 'get', 'Put', '']) assert.equal(isIdempotent(m), false, m);
});
