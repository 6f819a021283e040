import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizePath } from './normalize-path';

test('paths as a server resolves them: unreserved escapes decoded, dot segments removed, reserved escapes kept', () => {
  for (const [raw, want] of [
    ['/admin', '/admin'],
    ['/public/../admin', '/admin'],
    ['/./admin', '/admin'],
    ['/a/b/../../admin/x', '/admin/x'],
    ['/../admin', '/admin'],
    ['/%61dmin', '/admin'],
    ['/public/%2e%2e/admin', '/admin'],
    ['/admin/.', '/admin/'],
    ['/admin/..', '/'],
    ['/a%2Fb', '/a%2Fb'],
    ['/a%2fb', '/a%2Fb'],
    ['/x.y/z', '/x.y/z'],
    ['/', '/'],
  ] as const) assert.equal(normalizePath(raw), want, raw);
});
