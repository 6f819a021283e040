// The tunnel without root: TunnelClient and TunnelServer over loopback TCP, where the
// simulator suites need network namespaces. `deliver` here stands for the node proxy's
// (a pod of this node or a 404), and the "pod" is a plain loopback server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createH2Server, constants as h2c, type IncomingHttpHeaders } from 'node:http2';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { hasCode } from '../../errors';
import { logger } from '../../log';
import { pollUntil } from '../../util/deadline';
import { isConnectFailure } from '../upstream/transport';
import { TunnelClient } from '../outbound/tunnel-client';
import { HEADER_ORIGINAL_DESTINATION, HEADER_SOURCE_WORKLOAD } from './tunnel-protocol';
import { TunnelServer, type TunnelDelivery } from '../inbound/tunnel-server';

type StreamInfo = Parameters<NonNullable<TunnelDelivery['onStream']>>[0];

async function listen(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

function openTcp(port: number): () => Promise<Duplex> {
  return () => new Promise<Duplex>((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1' }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Reads a stream until `n` bytes have come, as one string. */
function readBytes(stream: Duplex, n: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const onData = (c: Buffer) => {
      got = Buffer.concat([got, c]);
      if (got.length >= n) { stream.off('data', onData); resolve(got.toString('utf8')); }
    };
    stream.on('data', onData);
    stream.once('error', reject);
  });
}

/**
 * A node's side: the pod app (answers what it reads in upper case), a TunnelServer whose
 * `deliver` reaches the app for `enrolled` only and refuses anything else with 404 as the
 * node proxy does, and a loopback listener feeding the tunnel server (the 15008 listener).
 */
async function node(enrolled: string) {
  const appSockets: Socket[] = [];
  const app = createServer((s) => {
    appSockets.push(s);
    s.on('data', (c: Buffer) => s.write(c.toString('utf8').toUpperCase()));
    s.on('end', () => s.end());
  });
  const appPort = await listen(app);
  const delivered: { target: { address: string; port: number }; meta: { sourceWorkload?: string; peer: string } }[] = [];
  const streams: StreamInfo[] = [];
  const tunnel = new TunnelServer({
    deliver: (target, meta) => {
      delivered.push({ target, meta });
      if (target.address !== enrolled) {
        return Promise.reject(Object.assign(new Error(`${target.address} is not an enrolled pod of this node`), { status: 404 }));
      }
      return openTcp(appPort)();
    },
    onStream: (info) => streams.push(info),
  }, logger('tunnel-test'));
  const accepted: Socket[] = [];
  const front = createServer((s) => { accepted.push(s); tunnel.accept(s); });
  const port = await listen(front);
  return {
    port, delivered, streams, appSockets,
    close: () => {
      tunnel.close();
      tunnel.destroy();
      for (const s of [...accepted, ...appSockets]) s.destroy();
      front.close();
      app.close();
    },
  };
}

test('a CONNECT stream is delivered to the pod with the source workload, and bytes flow both ways', async (t) => {
  const n = await node('10.0.2.7');
  const client = new TunnelClient();
  t.after(async () => { await client.close(Date.now()); n.close(); });

  const stream = await client.open('pod-a|node-b', { address: '127.0.0.1', port: n.port }, openTcp(n.port),
    { address: '10.0.2.7', port: 8080 }, { sourceWorkload: 'shop/frontend', originalDestination: '10.96.0.10:80' }, 5000);
  assert.equal(n.delivered.length, 1);
  assert.deepEqual(n.delivered[0]!.target, { address: '10.0.2.7', port: 8080 });
  assert.equal(n.delivered[0]!.meta.sourceWorkload, 'shop/frontend');
  assert.equal(n.delivered[0]!.meta.peer, '127.0.0.1');

  const reply = readBytes(stream, 'hello pod'.length);
  stream.write('hello pod');
  assert.equal(await reply, 'HELLO POD');
  const later = readBytes(stream, ' and again'.length);
  stream.write(' and again');
  assert.equal(await later, ' AND AGAIN');

  // The source ends the stream: the server reports it with the bytes each way.
  stream.end();
  assert.ok(await pollUntil(() => n.streams.length === 1, Date.now() + 5000), 'the stream reached the server within 5 s');
  assert.equal(n.streams[0]!.sourceWorkload, 'shop/frontend');
  assert.equal(n.streams[0]!.bytesIn, 'hello pod and again'.length);
  assert.equal(n.streams[0]!.bytesOut, 'hello pod and again'.length);
  assert.equal(n.streams[0]!.error, undefined);
});

test('one session per pool key carries every stream to that node', async (t) => {
  const n = await node('10.0.2.7');
  const client = new TunnelClient();
  let connects = 0;
  const open = () => { connects++; return openTcp(n.port)(); };
  t.after(async () => { await client.close(Date.now()); n.close(); });
  const target = { address: '10.0.2.7', port: 8080 };
  const [a, b] = await Promise.all([
    client.open('pod-a|node-b', { address: '127.0.0.1', port: n.port }, open, target, {}, 5000),
    client.open('pod-a|node-b', { address: '127.0.0.1', port: n.port }, open, target, {}, 5000),
  ]);
  assert.equal(connects, 1);
  const [ra, rb] = [readBytes(a, 1), readBytes(b, 1)];
  a.write('a');
  b.write('b');
  assert.deepEqual([await ra, await rb], ['A', 'B']);
  assert.equal(n.delivered[0]!.meta.sourceWorkload, undefined, 'no header when the source workload is unknown');
});

test('the CONNECT carries the authority ([v6]:port), the source workload and the original destination', async (t) => {
  // A bare HTTP/2 server, to see the request's headers themselves (TunnelServer hands
  // `deliver` the parsed target and the source workload, not the original destination).
  let seen: IncomingHttpHeaders | undefined;
  const h2 = createH2Server();
  h2.on('stream', (stream, headers) => {
    seen = headers;
    stream.respond({ [h2c.HTTP2_HEADER_STATUS]: 200 });
    stream.on('data', (c: Buffer) => stream.write(c));
  });
  h2.listen(0, '127.0.0.1');
  await once(h2, 'listening');
  const port = (h2.address() as AddressInfo).port;
  const client = new TunnelClient();
  t.after(async () => { await client.close(Date.now()); h2.close(); });

  const stream = await client.open('k', { address: '127.0.0.1', port }, openTcp(port),
    { address: 'fd00:10::7', port: 8080 }, { sourceWorkload: 'shop/frontend', originalDestination: '10.96.0.10:80' }, 5000);
  assert.equal(seen?.[h2c.HTTP2_HEADER_METHOD], 'CONNECT');
  assert.equal(seen?.[h2c.HTTP2_HEADER_AUTHORITY], '[fd00:10::7]:8080');
  assert.equal(seen?.[HEADER_SOURCE_WORKLOAD], 'shop/frontend');
  assert.equal(seen?.[HEADER_ORIGINAL_DESTINATION], '10.96.0.10:80');
  const echoed = readBytes(stream, 2);
  stream.write('hi');
  assert.equal(await echoed, 'hi');
  stream.destroy();
});

test('the server parses a [v6]:port authority for deliver', async (t) => {
  const n = await node('fd00:10::7');
  const client = new TunnelClient();
  t.after(async () => { await client.close(Date.now()); n.close(); });
  const stream = await client.open('k', { address: '127.0.0.1', port: n.port }, openTcp(n.port), { address: 'fd00:10::7', port: 9090 }, {}, 5000);
  assert.deepEqual(n.delivered[0]!.target, { address: 'fd00:10::7', port: 9090 });
  stream.destroy();
});

test('a target that is not an enrolled pod of the node: the open fails with 404 and nothing is relayed', async (t) => {
  const n = await node('10.0.2.7');
  const client = new TunnelClient();
  t.after(async () => { await client.close(Date.now()); n.close(); });

  await assert.rejects(
    client.open('pod-a|node-b', { address: '127.0.0.1', port: n.port }, openTcp(n.port),
      { address: '10.0.9.9', port: 8080 }, { sourceWorkload: 'shop/frontend' }, 5000),
    (err: Error) => {
      assert.ok(hasCode(err, 'ERR_NM_TUNNEL_REFUSED'), String(err));
      assert.match(err.message, /refused 10\.0\.9\.9:8080 with 404/);
      assert.match(err.message, new RegExp(`node proxy at 127\\.0\\.0\\.1:${n.port}`));
      assert.match(err.message, /may not be enrolled on its node/);
      return true;
    });
  assert.equal(n.delivered.length, 1, 'deliver was asked');
  assert.equal(n.appSockets.length, 0, 'no connection reached any pod');
  assert.equal(n.streams.length, 0, 'no stream was relayed');

  // The session stays good for the pods the node does serve.
  const ok = await client.open('pod-a|node-b', { address: '127.0.0.1', port: n.port }, openTcp(n.port), { address: '10.0.2.7', port: 8080 }, {}, 5000);
  const reply = readBytes(ok, 2);
  ok.write('ok');
  assert.equal(await reply, 'OK');
  ok.destroy();
});

test('close with a deadline ends within it when the peer never answers the GOAWAY', async (t) => {
  // A frozen node: it accepts the TCP connection and never reads or writes a byte, so
  // neither the CONNECT nor the GOAWAY is ever answered.
  const frozen: Socket[] = [];
  const peer = createServer((s) => { frozen.push(s); s.pause(); });
  const port = await listen(peer);
  const client = new TunnelClient();
  t.after(() => { for (const s of frozen) s.destroy(); peer.close(); });

  // The open's own timeout is far beyond the close's deadline: what ends it must be the close.
  const pending = client.open('k', { address: '127.0.0.1', port }, openTcp(port), { address: '10.0.2.7', port: 8080 }, {}, 60_000);
  const outcome = pending.then(() => 'opened', (err: Error) => err);
  assert.ok(await pollUntil(() => frozen.length === 1, Date.now() + 5000), 'the frozen peer accepted within 5 s');

  const started = Date.now();
  await client.close(started + 300);
  const took = Date.now() - started;
  assert.ok(took >= 250, `close waited for the deadline, not less (${took} ms)`);
  assert.ok(took < 30_000, `close ended at its deadline, not at the open's 60 s timeout (${took} ms)`);
  // The open in flight fails as soon as its stream is gone (a connect failure: retried or
  // made directly), not at its own timeout.
  const result = await outcome;
  assert.ok(result instanceof Error, `the pending open failed (got ${String(result)})`);
  assert.equal((result as Error & { code?: string }).code, 'ERR_NM_TUNNEL_CLOSED');
  assert.ok(isConnectFailure(result), 'counted as a connect failure');
});

test('close when every stream is done ends at once', async (t) => {
  const n = await node('10.0.2.7');
  const client = new TunnelClient();
  t.after(() => n.close());
  const s = await client.open('k', { address: '127.0.0.1', port: n.port }, openTcp(n.port), { address: '10.0.2.7', port: 8080 }, {}, 5000);
  s.destroy();
  const started = Date.now();
  // A far deadline: close must end when the sessions have closed, not at the deadline (its
  // backstop timer is cleared then, so nothing holds this test file either).
  await client.close(started + 60_000);
  assert.ok(Date.now() - started < 30_000, `close took ${Date.now() - started} ms: it waited for the deadline`);
});

