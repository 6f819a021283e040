import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_CAPTURE_SETTINGS } from '../../capture/settings';
import type { SourceResult } from '../../config/config-source';
import { FakeSource } from '../../config/testing';
import type { PodNetwork, SocketAddress } from '../../datapath/pod-network';
import { logger } from '../../log';
import { testPod } from '../../mesh/testing';
import { pollUntil } from '../../util/deadline';
import { freePort } from '../../util/free-port';
import { Runtime, type RuntimeRole } from '../runtime';
import type { HandoverStatus } from './status';

/*
 * Two runtimes of one instance in one process, no root: the second takes the first one's
 * listener and its TCP relay over the hand-over socket. The "pod" listens on loopback at
 * the very port the proxy asks for, so the received listener is checked as on a node.
 */

class ExactPortNetwork implements PodNetwork {
  readonly ipv6 = false;
  constructor(private readonly original: SocketAddress) {}

  listen(options: { family: 4 | 6; address: string; port: number }): Promise<Server> {
    const server = createServer({ allowHalfOpen: true });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: options.port }, () => resolve(server));
    });
  }

  connect(options: { address: string; port: number }): Socket {
    return connect({ host: options.address, port: options.port, allowHalfOpen: true });
  }

  originalDestination(): SocketAddress {
    return this.original;
  }
}

function lines(socket: Socket): { next(): Promise<string> } {
  let buffered = '';
  const waiting: Array<(line: string) => void> = [];
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => {
    buffered += d;
    let i;
    while ((i = buffered.indexOf('\n')) >= 0 && waiting.length > 0) {
      const line = buffered.slice(0, i);
      buffered = buffered.slice(i + 1);
      waiting.shift()!(line);
    }
  });
  return {
    next: () => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no line within 5 s')), 5000);
      waiting.push((line) => { clearTimeout(timer); resolve(line); });
    }),
  };
}

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject).end();
  });
}

const empty: SourceResult = { namespaces: [], pods: [], services: [], others: [], rejected: [], files: [] };

test('hand-over: the new runtime takes the listener and the TCP relay; the old one is told to exit', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nm-handover-unit-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const echo = createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
  t.after(() => echo.close());
  const echoPort = (echo.address() as AddressInfo).port;
  // Outside the mesh: passed through as TCP over a direct connection (a relay of two sockets).
  const network = new ExactPortNetwork({ family: 4, address: '127.0.0.1', port: echoPort });
  const pod = testPod('p1', { nodeName: 'node1', ips: ['127.0.0.1'], annotations: { 'nodemesh.dev/mode': 'ambient' } });
  const settings = { ...DEFAULT_CAPTURE_SETTINGS, captureInbound: false, outboundPort: await freePort(), probePort: await freePort() };
  const handoverSocket = join(dir, 'handover.sock');
  const healthPort = await freePort();
  const adminPort = await freePort();

  const make = (name: string, onHandedOver?: () => void) => {
    let runtime: Runtime;
    const role: RuntimeRole = {
      async reconcile() {
        if (!runtime.proxy.has('default/p1')) await runtime.proxy.addPod(pod, network);
      },
      readiness: () => ({ ready: true, reason: `ready: ${name}` }),
      podRecords: () => [],
      capture: () => ({ backend: 'iptables', reason: 'test', settings, counters: {}, namespaces: [] }),
    };
    runtime = new Runtime({
      kind: 'agent', log: logger(name), source: new FakeSource(empty), settings, proxy: { tunnel: false, sniffTimeoutMs: 20 },
      adminSocket: join(dir, `${name}.sock`), drainMs: 100, handoverSocket, healthPort, adminPort, adminHost: '127.0.0.1', ...(onHandedOver ? { onHandedOver } : {}),
    }, role);
    return runtime;
  };

  let oldDone = false;
  const oldOne = make('old', () => { oldDone = true; });
  await oldOne.start();
  t.after(() => oldOne.stop());
  const client = connect({ host: '127.0.0.1', port: settings.outboundPort });
  t.after(() => client.destroy());
  const reader = lines(client);
  client.write('one\n');
  assert.equal(await reader.next(), 'one');
  assert.ok(await pollUntil(() => oldOne.proxy.handableRelays().length === 1, Date.now() + 5000), 'the relay is on offer');

  const newOne = make('new');
  await newOne.start();
  t.after(() => newOne.stop());
  const status: HandoverStatus = newOne.handover();
  assert.equal(status.state, 'done', JSON.stringify(status));
  assert.equal(status.connections, 1);
  assert.equal(status.listeners, 3, "the pod's outbound listener, health and admin");
  assert.ok(await pollUntil(() => oldDone, Date.now() + 5000), 'the old runtime was told it handed everything over');
  assert.equal(oldOne.handover().state, 'done');
  assert.equal(oldOne.proxy.handableRelays().length, 0, 'the old runtime let go of the relay');
  assert.equal(newOne.proxy.handableRelays().length, 1, 'the new runtime relays it (and could hand it on)');
  // The node ports came along: the new runtime answers on them, with no wait for the old one's stop.
  assert.deepEqual(await get(healthPort, '/healthz/ready'), { status: 200, body: 'ready: new\n' });
  assert.equal(JSON.parse((await get(adminPort, '/debug/handover')).body).role, 'receiver');

  // The same connection, carried on by the new runtime: bytes both ways, no FIN, no reset.
  client.write('two\n');
  assert.equal(await reader.next(), 'two');
  // New connections: the same listening socket, accepted by the new runtime only.
  const second = connect({ host: '127.0.0.1', port: settings.outboundPort });
  t.after(() => second.destroy());
  const secondReader = lines(second);
  second.write('three\n');
  assert.equal(await secondReader.next(), 'three');
  assert.ok(await pollUntil(() => newOne.proxy.handableRelays().length === 2, Date.now() + 5000), 'the new runtime accepted the new connection');

  // The old runtime's stop drains nothing of what it gave away, and leaves the new one's
  // hand-over socket in place for the next successor.
  await oldOne.stop();
  assert.ok(existsSync(handoverSocket), 'the old runtime removed the new one\'s hand-over socket');
  client.write('four\n');
  assert.equal(await reader.next(), 'four');
});
