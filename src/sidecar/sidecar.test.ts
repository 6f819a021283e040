import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { createServer, connect, type AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminGet } from '../admin/admin-client';
import type { SidecarPodRecord } from '../admin/debug-replies';
import { DEFAULT_CAPTURE_SETTINGS, type CaptureSettings } from '../capture/settings';
import type { SourceResult } from '../config/config-source';
import type { PodInfo } from '../mesh/model';
import { checkPodIPs } from './init';
import { SelfNetwork, type OriginalDstBinding } from './self-network';
import { Sidecar } from './sidecar';
import { FakeSource } from '../config/testing';

/*
 * The sidecar runtime in-process, on loopback: no namespace, no iptables. SelfNetwork (the
 * unprivileged network) listens in the test's own namespace on free ports; capture is not
 * there, so these tests cover the life cycle (waiting, serving, draining) and the admin and
 * health answers. Capture itself is covered by test/sidecar.test.ts on the simulator.
 */

async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise<ReturnType<typeof createServer>>((done) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => done(s));
  })));
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

function pod(ips = ['127.0.0.1']): PodInfo {
  return {
    name: 'c1', namespace: 'demo', uid: 'u1', labels: { app: 'client' }, annotations: { 'nodemesh.dev/mode': 'sidecar' }, nodeName: 'node1',
    ips, hostNetwork: false, serviceAccount: 'default', containerPorts: [], ready: true,
  };
}

function result(pods: PodInfo[]): SourceResult {
  return { namespaces: [{ name: 'demo', labels: {} }], pods, services: [], others: [], rejected: [], files: [] };
}


/**
 * No conntrack here: SO_ORIGINAL_DST is unanswered and the local address is the listener's
 * own, as for a connection that reached the listener without being redirected.
 */
function noConntrack(listenerPort: number): OriginalDstBinding {
  return {
    getOriginalDst: () => { throw Object.assign(new Error('getsockopt SO_ORIGINAL_DST failed: ENOENT'), { code: 'ENOENT' }); },
    localAddress: () => ({ family: 4, address: '127.0.0.1', port: listenerPort }),
  };
}

function health(port: number, path: string): Promise<number> {
  return new Promise((done, fail) => {
    request({ host: '127.0.0.1', port, path }, (res) => { res.resume(); done(res.statusCode ?? 0); }).on('error', fail).end();
  });
}

test('sidecar life cycle: waiting for its pod, serving it, draining on stop', async () => {
  const [outboundPort, inboundPort, probePort, healthPort] = await freePorts(4);
  const settings: CaptureSettings = { ...DEFAULT_CAPTURE_SETTINGS, outboundPort: outboundPort!, inboundPort: inboundPort!, probePort: probePort! };
  const dir = mkdtempSync(join(tmpdir(), 'nm-sidecar-unit-'));
  const socket = join(dir, 'admin.sock');
  const source = new FakeSource(result([]));
  const sidecar = new Sidecar({
    podKey: 'demo/c1',
    source,
    network: new SelfNetwork(noConntrack(outboundPort!), { ipv6: false }),
    settings,
    loopAvoidance: 'uid',
    adminSocket: socket,
    healthPort: healthPort!,
    drainMs: 100,
  });
  try {
    await sidecar.start();
    const [waiting] = await adminGet<SidecarPodRecord[]>(socket, '/debug/pods');
    assert.equal(waiting?.status, 'waiting');
    assert.match(waiting!.reason!, /not in the configuration yet/);
    assert.equal(await health(healthPort!, '/healthz/ready'), 503);
    assert.equal(await health(healthPort!, '/healthz/live'), 200);

    // The pod shows up: listeners start on the outbound and inbound ports.
    source.onChange!(result([pod()]));
    await sidecar.settled();
    const [serving] = await adminGet<SidecarPodRecord[]>(socket, '/debug/pods');
    assert.equal(serving?.status, 'enrolled', JSON.stringify(serving));
    assert.deepEqual(serving?.ips, ['127.0.0.1']);
    assert.equal(await health(healthPort!, '/healthz/ready'), 200);
    const capture = await adminGet<{ backend: string; mode: string; reason: string }>(socket, '/debug/capture');
    assert.equal(capture.mode, 'sidecar');
    assert.match(capture.reason, /proxy uid/);
    assert.match(await adminGet<string>(socket, '/metrics'), /nodemesh_sidecar_ready 1/);

    // An outbound connection without an original destination is refused by the proxy and logged.
    await new Promise<void>((done) => {
      const s = connect(outboundPort!, '127.0.0.1');
      s.on('close', () => done());
      s.on('error', () => undefined);
      s.resume();
    });
    const log = await adminGet<Array<{ direction: string; error?: string }>>(socket, '/debug/connections');
    assert.ok(log.some((c) => c.direction === 'outbound' && /original destination/.test(c.error ?? '')), JSON.stringify(log));

    // The same configuration again: nothing restarts.
    source.onChange!(result([pod()]));
    await sidecar.settled();
    assert.equal(sidecar.status().since, serving!.since);
  } finally {
    await sidecar.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(source.closed, true);
  assert.equal(sidecar.status().status, 'draining');
  // Listeners are closed.
  await new Promise<void>((done) => {
    const s = connect(outboundPort!, '127.0.0.1');
    s.on('error', (err: NodeJS.ErrnoException) => { assert.equal(err.code, 'ECONNREFUSED'); done(); });
    s.on('connect', () => { s.destroy(); assert.fail('the outbound listener is still open'); });
  });
});

test('a port already taken: the sidecar reports the pod failed with the reason', async () => {
  const [outboundPort, inboundPort] = await freePorts(2);
  const blocker = createServer();
  await new Promise<void>((done) => blocker.listen(outboundPort, '127.0.0.1', () => done()));
  const sidecar = new Sidecar({
    podKey: 'demo/c1',
    source: new FakeSource(result([pod()])),
    network: new SelfNetwork(noConntrack(outboundPort!), { ipv6: false }),
    settings: { ...DEFAULT_CAPTURE_SETTINGS, outboundPort: outboundPort!, inboundPort: inboundPort! },
    loopAvoidance: 'uid',
  });
  try {
    await sidecar.start();
    const status = sidecar.status();
    assert.equal(status.status, 'failed');
    assert.match(status.reason!, /EADDRINUSE/);
  } finally {
    await sidecar.stop();
    blocker.close();
  }
});

test('sidecar-init refuses a namespace that does not own the pod IPs', () => {
  checkPodIPs(['10.244.1.21', 'FD00:244:1::21'], ['127.0.0.1', '10.244.1.21', 'fd00:244:1::21']);
  assert.throws(() => checkPodIPs(['10.244.1.21'], ['127.0.0.1', '10.255.0.1']), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'ERR_NM_SIDECAR_WRONG_NETNS');
    assert.match(err.message, /10\.244\.1\.21 are not addresses of this network namespace/);
    assert.match(err.message, /hostNetwork/);
    return true;
  });
});
