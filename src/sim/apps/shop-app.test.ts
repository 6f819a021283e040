import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { backendHandler, failsAt, runLoad } from './shop-app';

test('failsAt spreads a share of failures evenly and exactly', () => {
  const pattern = (share: number, n: number) => Array.from({ length: n }, (_, i) => (failsAt(i, share) ? 'F' : '.')).join('');
  assert.equal(pattern(0.8, 10), '.FFFF.FFFF');
  assert.equal(pattern(0, 5), '.....');
  assert.equal(pattern(1, 5), 'FFFFF');
  assert.equal(pattern(0.5, 6), '.F.F.F');
});

async function listen(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.address() as AddressInfo).port;
}

test('a backend answers with its version, fails its share once told, and counts; the load tallies versions and statuses', async () => {
  const backend = createServer(backendHandler('ratings-2', 'v1', 0));
  // A stand-in for the frontend: it reports the backend's answer the way the frontend does.
  const port = await listen(backend);
  const frontend = createServer((req, res) => {
    req.resume();
    void fetch(`http://127.0.0.1:${port}/`).then(async (r) => {
      const body = await r.json() as { version: string };
      res.end(JSON.stringify({ name: 'frontend', calls: { ratings: { status: r.status, version: body.version } } }));
    });
  });
  const fport = await listen(frontend);
  try {
    const ok = await runLoad(`http://127.0.0.1:${fport}/`, 5, 2);
    assert.deepEqual([ok.statuses, ok.versions, ok.backendStatuses], [{ 200: 5 }, { ratings: { v1: 5 } }, { ratings: { 200: 5 } }]);
    assert.equal((await fetch(`http://127.0.0.1:${port}/fail?share=0.8`, { method: 'POST' })).status, 200);
    assert.equal((await fetch(`http://127.0.0.1:${port}/fail?share=2`, { method: 'POST' })).status, 400);
    const failing = await runLoad(`http://127.0.0.1:${fport}/`, 10, 1);
    assert.deepEqual(failing.backendStatuses, { ratings: { 200: 2, 503: 8 } });
    assert.deepEqual(await (await fetch(`http://127.0.0.1:${port}/stats`)).json(), { name: 'ratings-2', version: 'v1', served: 15, failed: 8 });
  } finally {
    frontend.closeAllConnections();
    backend.closeAllConnections();
    await Promise.all([new Promise((r) => frontend.close(r)), new Promise((r) => backend.close(r))]);
  }
});
