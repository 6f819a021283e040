import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { freePort } from '../util/free-port';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminGet } from '../admin/admin-client';
import type { CaptureReply } from '../admin/debug-replies';
import { DEFAULT_CAPTURE_SETTINGS } from '../capture/settings';
import type { SourceResult } from '../config/config-source';
import type { MeshSnapshot } from '../config/snapshot';
import { logger } from '../log';
import { Runtime, type RuntimeRole } from './runtime';
import { FakeSource } from '../config/testing';

/*
 * The runtime on loopback with a role that records what it is asked: no pod is added, so
 * no namespace and no root. Covers the order of the start and stop steps, the apply loop
 * (serialised, surviving a failed reconcile), readiness and the common admin routes.
 */

function result(version: string, rejected: SourceResult['rejected'] = []): SourceResult {
  return { namespaces: [{ name: version, labels: {} }], pods: [], services: [], others: [], rejected, files: [] };
}


function health(port: number): Promise<{ status: number; body: string }> {
  return new Promise((done, fail) => {
    request({ host: '127.0.0.1', port, path: '/healthz/ready', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => done({ status: res.statusCode ?? 0, body: body.trim() }));
    }).on('error', fail).end();
  });
}

const CAPTURE: CaptureReply = { backend: 'iptables', reason: 'test', settings: DEFAULT_CAPTURE_SETTINGS, counters: {}, namespaces: [] };

test('runtime: start and stop steps in order, a serialised apply loop, readiness and the /debug routes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nm-runtime-unit-'));
  const socket = join(dir, 'admin.sock');
  const healthPort = await freePort();
  const events: string[] = [];
  let releaseFirst: (() => void) | undefined;
  const role: RuntimeRole = {
    async reconcile(snapshot: MeshSnapshot) {
      const name = [...snapshot.namespaces.keys()][0] ?? '';
      events.push(`reconcile ${name} v${snapshot.version} start`);
      if (name === 'slow') await new Promise<void>((r) => { releaseFirst = r; });
      if (name === 'broken') throw new Error('boom');
      events.push(`reconcile ${name} end`);
    },
    readiness: () => ({ ready: true, reason: 'ready: role' }),
    podRecords: () => [{ key: 'demo/p1' }],
    capture: () => CAPTURE,
  };
  const source = new FakeSource(result('first', [{ file: 'x.yaml', object: 'Pod demo/bad', reason: 'bad pod', code: 'ERR_NM_TEST' }]));
  const runtime = new Runtime({
    kind: 'sidecar',
    log: logger('runtime-test'),
    source,
    settings: { ...DEFAULT_CAPTURE_SETTINGS, outboundPort: await freePort(), inboundPort: await freePort(), probePort: await freePort() },
    proxy: { tunnel: false },
    adminSocket: socket,
    healthPort,
    drainMs: 50,
  }, role);
  try {
    await runtime.start({
      afterHealth: async () => {
        // The health port is ours before anything else; admin is not served yet.
        const h = await health(healthPort);
        events.push(`afterHealth ${h.status} ${h.body} admin:${existsSync(socket)}`);
      },
      afterFirstApply: async () => { events.push(`afterFirstApply ready:${runtime.readiness().ready}`); },
    });
    assert.deepEqual(events, [
      'afterHealth 503 configuration not synced yet admin:false',
      'reconcile first v1 start',
      'reconcile first end',
      'afterFirstApply ready:false',
    ]);
    assert.deepEqual(await health(healthPort), { status: 200, body: 'ready: role' });
    assert.deepEqual(await adminGet(socket, '/debug/pods'), [{ key: 'demo/p1' }]);
    assert.deepEqual(await adminGet(socket, '/debug/capture'), JSON.parse(JSON.stringify(CAPTURE)));
    const config = await adminGet<{ version: number; rejected: Array<{ object: string }> }>(socket, '/debug/config');
    assert.equal(config.version, 1);
    assert.deepEqual(config.rejected.map((r) => r.object), ['Pod demo/bad']);
    assert.deepEqual(await adminGet(socket, '/debug/open'), []);
    assert.deepEqual(await adminGet(socket, '/debug/connections'), []);
    assert.match(await adminGet<string>(socket, '/metrics'), /nodemesh_sidecar_process_cpu_seconds_total/);

    // Changes from the source: the proxy sees each at once, reconciles run one at a time,
    // in order, and a failed one does not stop the next.
    events.length = 0;
    source.onChange!(result('slow'));
    source.onChange!(result('broken'));
    source.onChange!(result('last'));
    assert.equal((await adminGet<{ version: number }>(socket, '/debug/config')).version, 4, 'the snapshot is swapped before the reconcile');
    assert.deepEqual(events, ['reconcile slow v2 start']);
    releaseFirst!();
    await runtime.settled();
    assert.deepEqual(events, ['reconcile slow v2 start', 'reconcile slow end', 'reconcile broken v3 start', 'reconcile last v4 start', 'reconcile last end']);

    // A reconcile of the current snapshot again (the agent's retry of failed pods).
    events.length = 0;
    await runtime.reconcileAgain();
    assert.deepEqual(events, ['reconcile last v4 start', 'reconcile last end']);

    // Stop: not ready at once; the mode's steps around the drain; the health port last.
    events.length = 0;
    const stopped = runtime.stop(undefined, {
      beforeDrain: async () => { events.push(`beforeDrain admin:${existsSync(socket)} health:${(await health(healthPort)).status}`); },
      afterDrain: async () => { events.push(`afterDrain admin:${existsSync(socket)} health:${(await health(healthPort)).status}`); },
    });
    assert.equal(runtime.stopping, true);
    assert.deepEqual(runtime.readiness(), { ready: false, reason: 'stopping: draining open connections' });
    await stopped;
    assert.equal(source.closed, true);
    assert.deepEqual(events, ['beforeDrain admin:true health:503', 'afterDrain admin:false health:503']);
    await assert.rejects(health(healthPort), /ECONNREFUSED/);
  } finally {
    if (!runtime.stopping) await runtime.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
