import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { collectBody } from '../http/body-adapters';
import { Http1Pools } from './http1-pools';
import type { UpstreamTransport } from './transport';

/** A plain transport that counts the connections it opened. */
function countingTransport(): UpstreamTransport & { opened: number } {
  const t = {
    kind: 'direct' as const,
    key: 'direct:demo/c1',
    opened: 0,
    open: (target: { address: string; port: number }) => new Promise<import('node:stream').Duplex>((resolve, reject) => {
      t.opened += 1;
      const s = netConnect(target.port, target.address);
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    }),
  };
  return t;
}

async function get(pools: Http1Pools, transport: UpstreamTransport, port: number): Promise<string> {
  const res = await pools.get(transport, '127.0.0.1', port).request({ method: 'GET', path: '/', authority: 'upstream', headers: {}, body: undefined });
  const body = res.body ? await collectBody(res.body, 1024) : Buffer.alloc(0);
  return Buffer.isBuffer(body) ? body.toString() : '?';
}

/** A loopback HTTP server (its connections counted and kept), the old and the new agent's pools; all closed after `body`. */
async function withTwoAgents(answer: (req: IncomingMessage, res: ServerResponse) => void, body: (h: { port: number; oldPools: Http1Pools; newPools: Http1Pools; serverSockets: Set<Socket>; accepted: () => number }) => Promise<void>): Promise<void> {
  const server = createServer(answer);
  const serverSockets = new Set<Socket>();
  let accepted = 0;
  server.on('connection', (s: Socket) => {
    accepted += 1;
    serverSockets.add(s);
    s.on('close', () => serverSockets.delete(s));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const oldPools = new Http1Pools();
  const newPools = new Http1Pools();
  try {
    await body({ port, oldPools, newPools, serverSockets, accepted: () => accepted });
  } finally {
    await Promise.all([oldPools.close(), newPools.close()]);
    server.closeAllConnections();
    server.close();
  }
}

test('an idle upstream connection taken from one agent\'s pools serves the next agent\'s pool of the same key', () =>
  withTwoAgents((req, res) => res.end(`port ${req.socket.remotePort}`), async ({ port, oldPools, newPools, accepted }) => {
    const oldTransport = countingTransport();
    const first = await get(oldPools, oldTransport, port);
    // The old agent's side: its idle connection leaves the pool, still open.
    const taken = oldPools.takeIdle((key) => key.startsWith('direct:demo/c1|'));
    assert.deepEqual(taken.map((t) => t.key), [`direct:demo/c1|127.0.0.1|${port}`]);
    assert.equal(taken[0]!.stream.destroyed, false);
    // The new agent's side: parked under its key until a request makes that pool.
    newPools.adoptIdle(taken[0]!.key, taken[0]!.stream);
    const newTransport = countingTransport();
    assert.equal(await get(newPools, newTransport, port), first, 'the same connection (the server saw the same client port)');
    assert.equal(newTransport.opened, 0, 'the new pool opened nothing');
    assert.equal(accepted(), 1);
    // And the old pool, its idle connection gone, opens a new one when asked.
    await get(oldPools, oldTransport, port);
    assert.equal(oldTransport.opened, 2);
  }));

test('parked connections of a pod that is released go with it', () =>
  withTwoAgents((_req, res) => res.end('ok'), async ({ port, oldPools, newPools }) => {
    await get(oldPools, countingTransport(), port);
    const [taken] = oldPools.takeIdle(() => true);
    newPools.adoptIdle(taken!.key, taken!.stream);
    await newPools.dropTransport('direct:demo/c1');
    assert.equal(taken!.stream.destroyed, true);
  }));

test('a handed connection the server closed meanwhile costs no request: it goes again on a fresh one', () =>
  withTwoAgents((_req, res) => res.end('ok'), async ({ port, oldPools, newPools, serverSockets }) => {
    await get(oldPools, countingTransport(), port);
    const [taken] = oldPools.takeIdle(() => true);
    // The server's keep-alive timeout ends the connection while it travels between agents.
    for (const s of serverSockets) s.destroy();
    newPools.adoptIdle(taken!.key, taken!.stream);
    const transport = countingTransport();
    assert.equal(await get(newPools, transport, port), 'ok');
    assert.equal(transport.opened, 1, 'one fresh connection for the request');
  }));
