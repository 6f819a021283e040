// The tunnel without root: TunnelClient and TunnelServer over loopback TCP with real
// mutual TLS (certificates from a throwaway CA), where the simulator suites need network
// namespaces. `deliver` here stands for the node proxy's (a pod of this node or a 404), and
// the "pod" is a plain loopback server.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as h2connect, createSecureServer, constants as h2c, type IncomingHttpHeaders } from 'node:http2';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect, createServer as createTlsServer, createSecureContext, type TLSSocket } from 'node:tls';
import { hasCode } from '../../errors';
import { logger } from '../../log';
import { pollUntil } from '../../util/deadline';
import { testCa } from '../../identity/testing/test-credentials';
import type { WorkloadCredential } from '../../identity/workload-certificates';
import { isConnectFailure } from '../upstream/transport';
import { TunnelClient, type TunnelTls } from '../outbound/tunnel-client';
import { HEADER_ORIGINAL_DESTINATION } from './tunnel-protocol';
import { TunnelServer, type TunnelDelivery, type TunnelPeer } from '../inbound/tunnel-server';

const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';
const BACKEND = 'spiffe://cluster.local/ns/shop/sa/backend';
let ca: Awaited<ReturnType<typeof testCa>>;
let frontend: WorkloadCredential;
let backend: WorkloadCredential;
before(async () => {
  ca = await testCa();
  [frontend, backend] = await Promise.all([ca.credential(FRONTEND), ca.credential(BACKEND)]);
});
/** The source's credential, expecting the backend at the other end. */
const asFrontend = (): TunnelTls => ({ context: frontend.context, expectedServerId: BACKEND });

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
  const delivered: { target: { address: string; port: number }; meta: TunnelPeer }[] = [];
  const handshakeFailures: string[] = [];
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
    onHandshakeFailure: (reason) => handshakeFailures.push(reason),
  }, logger('tunnel-test'));
  const accepted: Socket[] = [];
  const front = createServer((s) => { accepted.push(s); tunnel.accept(s, { ...backend, listenerIdentity: BACKEND }); });
  const port = await listen(front);
  return {
    port, delivered, streams, appSockets, handshakeFailures, accepted,
    close: () => {
      tunnel.close();
      tunnel.destroy();
      for (const s of [...accepted, ...appSockets]) s.destroy();
      front.close();
      app.close();
    },
  };
}

test('a CONNECT stream inside mTLS is delivered to the pod with the source identity from its certificate, and bytes flow both ways', async (t) => {
  const n = await node('10.0.2.7');
  const client = new TunnelClient();
  t.after(async () => { await client.close(Date.now()); n.close(); });

  const stream = await client.open('pod-a|node-b', { address: '127.0.0.1', port: n.port }, openTcp(n.port),
    { address: '10.0.2.7', port: 8080 }, { originalDestination: '10.96.0.10:80' }, 5000, asFrontend());
  assert.equal(n.delivered.length, 1);
  assert.deepEqual(n.delivered[0]!.target, { address: '10.0.2.7', port: 8080 });
  assert.equal(n.delivered[0]!.meta.peerIdentity, FRONTEND);
  assert.equal(n.delivered[0]!.meta.listenerIdentity, BACKEND);
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
  assert.equal(n.streams[0]!.peerIdentity, FRONTEND);
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
    client.open('pod-a|node-b', { address: '127.0.0.1', port: n.port }, open, target, {}, 5000, asFrontend()),
    client.open('pod-a|node-b', { address: '127.0.0.1', port: n.port }, open, target, {}, 5000, asFrontend()),
  ]);
  assert.equal(connects, 1);
  const [ra, rb] = [readBytes(a, 1), readBytes(b, 1)];
  a.write('a');
  b.write('b');
  assert.deepEqual([await ra, await rb], ['A', 'B']);
  assert.equal(n.delivered.length, 2);
});

test('the CONNECT carries the authority ([v6]:port) and the original destination, inside TLS 1.3 with ALPN h2, and no source header', async (t) => {
  // A bare HTTP/2 server over TLS, to see the request's headers themselves.
  let seen: IncomingHttpHeaders | undefined;
  let protocol: string | null = null;
  const h2 = createSecureServer({ cert: backend.chainPem, key: backend.keyPem, ca: ca.bundlePem, requestCert: true, ALPNProtocols: ['h2'] });
  h2.on('stream', (stream, headers) => {
    seen = headers;
    protocol = (stream.session?.socket as TLSSocket).getProtocol();
    stream.respond({ [h2c.HTTP2_HEADER_STATUS]: 200 });
    stream.on('data', (c: Buffer) => stream.write(c));
  });
  h2.listen(0, '127.0.0.1');
  await once(h2, 'listening');
  const port = (h2.address() as AddressInfo).port;
  const client = new TunnelClient();
  t.after(async () => { await client.close(Date.now()); h2.close(); });

  const stream = await client.open('k', { address: '127.0.0.1', port }, openTcp(port),
    { address: 'fd00:10::7', port: 8080 }, { originalDestination: '10.96.0.10:80' }, 5000, asFrontend());
  assert.equal(seen?.[h2c.HTTP2_HEADER_METHOD], 'CONNECT');
  assert.equal(seen?.[h2c.HTTP2_HEADER_AUTHORITY], '[fd00:10::7]:8080');
  assert.equal(seen?.[HEADER_ORIGINAL_DESTINATION], '10.96.0.10:80');
  assert.equal(seen?.['x-nodemesh-source-workload'], undefined, 'the source is its certificate, never a header');
  assert.equal(protocol, 'TLSv1.3');
  const echoed = readBytes(stream, 2);
  stream.write('hi');
  assert.equal(await echoed, 'hi');
  stream.destroy();
});

test('a client without a certificate, or plaintext HTTP/2, gets no stream: the connection is closed and counted', async (t) => {
  const n = await node('10.0.2.7');
  t.after(() => n.close());
  // TLS without a client certificate (a pod outside the mesh that speaks TLS).
  const anonymous = tlsConnect({ host: '127.0.0.1', port: n.port, ca: ca.bundlePem, ALPNProtocols: ['h2'], checkServerIdentity: () => undefined });
  anonymous.on('error', () => undefined);
  // Plaintext h2c, as the tunnel was before mTLS (the attack of the issue).
  const plain = h2connect(`http://127.0.0.1:${n.port}`);
  plain.on('error', () => undefined);
  const req = plain.request({ [h2c.HTTP2_HEADER_METHOD]: 'CONNECT', [h2c.HTTP2_HEADER_AUTHORITY]: '10.0.2.7:8080', 'x-nodemesh-source-workload': 'shop/frontend' });
  req.on('error', () => undefined);
  let answered = false;
  req.on('response', () => { answered = true; });
  assert.ok(await pollUntil(() => n.handshakeFailures.length === 2, Date.now() + 10_000), `both refused (${n.handshakeFailures.join('; ')})`);
  assert.ok(await pollUntil(() => plain.destroyed || plain.closed, Date.now() + 10_000), 'the plaintext session is closed');
  assert.equal(answered, false, 'no CONNECT answered');
  assert.equal(n.delivered.length, 0, 'nothing was delivered');
  assert.equal(n.appSockets.length, 0);
  anonymous.destroy();
  plain.destroy();
});

test('the client refuses a server whose certificate is another workload\'s, or from another CA', async (t) => {
  const n = await node('10.0.2.7');
  const client = new TunnelClient();
  t.after(async () => { await client.close(Date.now()); n.close(); });
  await assert.rejects(
    client.open('k1', { address: '127.0.0.1', port: n.port }, openTcp(n.port), { address: '10.0.2.7', port: 8080 }, {}, 5000, { context: frontend.context, expectedServerId: 'spiffe://cluster.local/ns/shop/sa/payments' }),
    (err: Error) => hasCode(err, 'ERR_NM_TUNNEL_TLS') && /presented spiffe:\/\/cluster\.local\/ns\/shop\/sa\/backend, expected .*payments/.test(err.message));
  const other = await testCa();
  const stranger = await other.credential(FRONTEND);
  await assert.rejects(
    client.open('k2', { address: '127.0.0.1', port: n.port }, openTcp(n.port), { address: '10.0.2.7', port: 8080 }, {}, 5000, { context: stranger.context, expectedServerId: BACKEND }),
    (err: Error) => hasCode(err, 'ERR_NM_TUNNEL_TLS'));
  assert.equal(n.delivered.length, 0);
  assert.ok(await pollUntil(() => n.handshakeFailures.length >= 1, Date.now() + 5000), 'the server counted the certificate it could not verify');
});

test('a certificate from the same CA for the same name, without the key, proves nothing: a forged header changes nothing either', async (t) => {
  const n = await node('10.0.2.7');
  const client = new TunnelClient();
  t.after(async () => { await client.close(Date.now()); n.close(); });
  // Someone holding only the frontend's certificate (public) with another key: the handshake fails.
  const impostorKey = (await ca.credential('spiffe://cluster.local/ns/shop/sa/impostor')).keyPem;
  assert.throws(() => createSecureContext({ cert: frontend.chainPem, key: impostorKey }), /key values mismatch|KEY_VALUES_MISMATCH/);
  const s = await client.open('k', { address: '127.0.0.1', port: n.port }, openTcp(n.port), { address: '10.0.2.7', port: 8080 }, {}, 5000, asFrontend());
  assert.equal(n.delivered[0]!.meta.peerIdentity, FRONTEND);
  s.destroy();
});

test('the server parses a [v6]:port authority for deliver', async (t) => {
  const n = await node('fd00:10::7');
  const client = new TunnelClient();
  t.after(async () => { await client.close(Date.now()); n.close(); });
  const stream = await client.open('k', { address: '127.0.0.1', port: n.port }, openTcp(n.port), { address: 'fd00:10::7', port: 9090 }, {}, 5000, asFrontend());
  assert.deepEqual(n.delivered[0]!.target, { address: 'fd00:10::7', port: 9090 });
  stream.destroy();
});

test('a target that is not an enrolled pod of the node: the open fails with 404 and nothing is relayed', async (t) => {
  const n = await node('10.0.2.7');
  const client = new TunnelClient();
  t.after(async () => { await client.close(Date.now()); n.close(); });

  await assert.rejects(
    client.open('pod-a|node-b', { address: '127.0.0.1', port: n.port }, openTcp(n.port),
      { address: '10.0.9.9', port: 8080 }, {}, 5000, asFrontend()),
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
  const ok = await client.open('pod-a|node-b', { address: '127.0.0.1', port: n.port }, openTcp(n.port), { address: '10.0.2.7', port: 8080 }, {}, 5000, asFrontend());
  const reply = readBytes(ok, 2);
  ok.write('ok');
  assert.equal(await reply, 'OK');
  ok.destroy();
});

test('close with a deadline ends within it when the peer never answers the GOAWAY', async (t) => {
  // A frozen node: it completes the TLS handshake, then never reads or writes a byte, so
  // neither the CONNECT nor the GOAWAY is ever answered.
  const frozen: Socket[] = [];
  const peer = createTlsServer({ cert: backend.chainPem, key: backend.keyPem, ca: ca.bundlePem, requestCert: true, ALPNProtocols: ['h2'] }, (s) => { frozen.push(s); s.pause(); });
  peer.listen(0, '127.0.0.1');
  await once(peer, 'listening');
  const port = (peer.address() as AddressInfo).port;
  const client = new TunnelClient();
  t.after(() => { for (const s of frozen) s.destroy(); peer.close(); });

  // The open's own timeout is far beyond the close's deadline: what ends it must be the close.
  const pending = client.open('k', { address: '127.0.0.1', port }, openTcp(port), { address: '10.0.2.7', port: 8080 }, {}, 60_000, asFrontend());
  const outcome = pending.then(() => 'opened', (err: Error) => err);
  assert.ok(await pollUntil(() => frozen.length === 1, Date.now() + 5000), 'the frozen peer accepted within 5 s');
  // The session exists once the client's handshake completed too.
  await new Promise((r) => setTimeout(r, 0));

  const started = Date.now();
  await client.close(started + 300);
  const took = Date.now() - started;
  assert.ok(took < 30_000, `close ended at its deadline, not at the open's 60 s timeout (${took} ms)`);
  // The open in flight fails as soon as its stream is gone (a connect failure: retried or
  // made directly), not at its own timeout.
  const result = await outcome;
  assert.ok(result instanceof Error, `the pending open failed (got ${String(result)})`);
  assert.ok(isConnectFailure(result), 'counted as a connect failure');
});

test('close when every stream is done ends at once', async (t) => {
  const n = await node('10.0.2.7');
  const client = new TunnelClient();
  t.after(() => n.close());
  const s = await client.open('k', { address: '127.0.0.1', port: n.port }, openTcp(n.port), { address: '10.0.2.7', port: 8080 }, {}, 5000, asFrontend());
  s.destroy();
  const started = Date.now();
  // A far deadline: close must end when the sessions have closed, not at the deadline (its
  // backstop timer is cleared then, so nothing holds this test file either).
  await client.close(started + 60_000);
  assert.ok(Date.now() - started < 30_000, `close took ${Date.now() - started} ms: it waited for the deadline`);
});

