import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { NodemeshError } from '../errors';
import { adminGet } from './admin-client';
import { AdminServer } from './admin-server';

test('a question the agent cannot answer comes back with the agent\'s own code and words; other failures as ERR_NM_ADMIN', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nm-admin-'));
  const socketPath = join(dir, 'admin.sock');
  const server = new AdminServer({
    registry: new Registry(),
    socketPath,
    routes: {
      '/debug/question': () => { throw new NodemeshError('ERR_NM_AUTHZ_CHECK_POD', '--from demo/nope: no such pod in this agent\'s configuration'); },
      '/debug/broken': () => { throw new Error('a bug'); },
      '/debug/fine': () => ({ ok: true }),
    },
  });
  await server.start();
  t.after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  assert.deepEqual(await adminGet(socketPath, '/debug/fine'), { ok: true });
  await assert.rejects(adminGet(socketPath, '/debug/question'), (e: unknown) => e instanceof NodemeshError && e.code === 'ERR_NM_AUTHZ_CHECK_POD' && e.message === '--from demo/nope: no such pod in this agent\'s configuration');
  await assert.rejects(adminGet(socketPath, '/debug/broken'), (e: unknown) => e instanceof NodemeshError && e.code === 'ERR_NM_ADMIN' && /answered 500/.test(e.message));
  await assert.rejects(adminGet(socketPath, '/debug/none'), (e: unknown) => e instanceof NodemeshError && e.code === 'ERR_NM_ADMIN' && /answered 404/.test(e.message));
});
