import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tlsConnect } from 'node:tls';
import { createServer, connect } from 'node:net';
import { once } from 'node:events';
import { classify, protocolFromAppProtocol, sniff } from './sniff';

test('HTTP/1 request lines, the h2 preface and other bytes are told apart', () => {
  assert.deepEqual(classify(Buffer.from('GET / HTTP/1.1\r\n')), { protocol: 'http1' });
  assert.deepEqual(classify(Buffer.from('OPTIONS * HTTP/1.1\r\n')), { protocol: 'http1' });
  assert.equal(classify(Buffer.from('GE')), undefined, 'a method prefix waits for more');
  assert.deepEqual(classify(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')), { protocol: 'h2' });
  assert.equal(classify(Buffer.from('PRI * HTTP/2')), undefined);
  assert.deepEqual(classify(Buffer.from('\x00\x01binary')), { protocol: 'tcp' });
  assert.deepEqual(classify(Buffer.from('hello')), { protocol: 'tcp' });
  assert.deepEqual(classify(Buffer.from('GETX')), { protocol: 'tcp' });
});

test('appProtocol and Istio-style port names override sniffing', () => {
  assert.equal(protocolFromAppProtocol('kubernetes.io/h2c'), 'h2');
  assert.equal(protocolFromAppProtocol('grpc'), 'h2');
  assert.equal(protocolFromAppProtocol('http'), 'http1');
  assert.equal(protocolFromAppProtocol(undefined, 'tcp-db'), 'tcp');
  assert.equal(protocolFromAppProtocol(undefined, 'mysql'), 'tcp');
  assert.equal(protocolFromAppProtocol(undefined, 'http-web'), undefined);
});

test('a real TLS ClientHello is recognised with its SNI, and the bytes stay in the socket', { timeout: 10_000 }, async () => {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const accepted = once(server, 'connection');
  const client = tlsConnect({ port, host: '127.0.0.1', servername: 'b.demo.svc.cluster.local', rejectUnauthorized: false });
  client.on('error', () => undefined);
  const [socket] = (await accepted) as [import('node:net').Socket];
  const r = await sniff(socket, 1000);
  assert.equal(r.protocol, 'tls');
  assert.equal(r.sni, 'b.demo.svc.cluster.local');
  const data = once(socket, 'data');
  socket.resume(); // sniff() leaves the socket paused for whoever takes it over
  const [first] = (await data) as [Buffer];
  assert.equal(first[0], 0x16, 'the sniffed bytes are read again by whoever takes the socket');
  client.destroy();
  socket.destroy();
  server.close();
});

test('a server-first protocol (client silent) becomes TCP after the sniff timeout', async () => {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection');
  const client = connect((server.address() as { port: number }).port, '127.0.0.1');
  const [socket] = (await accepted) as [import('node:net').Socket];
  const r = await sniff(socket, 50);
  assert.deepEqual(r, { protocol: 'tcp', by: 'timeout' });
  client.destroy();
  socket.destroy();
  server.close();
});
