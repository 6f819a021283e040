import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tlsConnect } from 'node:tls';
import { createServer, connect } from 'node:net';
import { once } from 'node:events';
import { MAX_SNIFFED_REQUEST_LINE } from './http1-request-line';
import { classify, classifyFinal, protocolFromAppProtocol, sniff } from './sniff';

test('HTTP/1 request lines, the h2 preface and other bytes are told apart', () => {
  assert.deepEqual(classify(Buffer.from('GET / HTTP/1.1\r\n')), { protocol: 'http1' });
  assert.deepEqual(classify(Buffer.from('OPTIONS * HTTP/1.1\r\n')), { protocol: 'http1' });
  assert.equal(classify(Buffer.from('GE')), undefined, 'a method prefix waits for more');
  assert.deepEqual(classify(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')), { protocol: 'h2' });
  assert.equal(classify(Buffer.from('PRI * HTTP/2')), undefined);
  assert.deepEqual(classify(Buffer.from('\x00\x01binary')), { protocol: 'tcp' });
  assert.equal(classify(Buffer.from('hello')), undefined, 'a token could be a method: wait for more');
  assert.deepEqual(classify(Buffer.from('hello\r\n')), { protocol: 'tcp' });
  assert.deepEqual(classify(Buffer.from('GETX\t')), { protocol: 'tcp' });
});

test('HTTP/1 is told by the request-line grammar: any method token, leading empty lines', () => {
  const http1 = { protocol: 'http1' };
  for (const line of [
    'PURGE /cache/a HTTP/1.1\r\n',
    'REPORT /dav HTTP/1.1\r\n',
    'QUERY /search HTTP/1.1\r\n',
    'M-SEARCH * HTTP/1.1\r\n',
    'get / HTTP/1.1\r\n',
    'Get /x HTTP/1.0\r\n',
    '\r\nGET / HTTP/1.1\r\n',
    '\r\n\r\n\nPOST /p HTTP/1.1\r\n',
    'GET http://other.test/admin HTTP/1.1\r\n',
    'CONNECT db:5432 HTTP/1.1\r\n',
    'PRI * HTTP/1.1\r\n',
    // Looser than the parser on purpose: the parser answers 400, nothing is relayed opaque.
    'GET  /two-spaces HTTP/1.1\r\n',
    'GET /\xe9 HTTP/1.1\r\n',
    'GET / HTTP/1.1\n',
    'GET / HTTP/1.9\r\n',
  ]) {
    assert.deepEqual(classify(Buffer.from(line, 'latin1')), http1, JSON.stringify(line));
  }
  // Cut anywhere, a request line waits for more bytes instead of becoming TCP.
  const full = '\r\nPURGE /cache/a HTTP/1.1';
  for (let cut = 1; cut < full.length; cut++) {
    assert.equal(classify(Buffer.from(full.slice(0, cut))), undefined, `cut at ${cut}`);
  }
  assert.deepEqual(classify(Buffer.from(full)), http1);
  for (const bytes of [
    'hello world\r\n',
    'GET key\r\n', // a Redis inline command, not a request line
    'get k\r\n',
    'PING\r\n',
    'GET / HTTP/2.0\r\n',
    'GET / FTP/1.1\r\n',
    'GET / HTTP/1.x\r\n',
    'GET\t/ HTTP/1.1\r\n',
    ' GET / HTTP/1.1\r\n',
    '\rGET / HTTP/1.1\r\n',
    '(GET / HTTP/1.1\r\n',
    '\x00\x00\x00\x08\x04\xd2\x16\x2f',
  ]) {
    assert.deepEqual(classify(Buffer.from(bytes, 'latin1')), { protocol: 'tcp' }, JSON.stringify(bytes));
  }
  // A request-target longer than the sniffer waits for is still HTTP/1 (the parser: 431).
  assert.equal(classify(Buffer.from(`GET /${'a'.repeat(MAX_SNIFFED_REQUEST_LINE - 10)}`)), undefined);
  assert.deepEqual(classify(Buffer.from(`GET /${'a'.repeat(MAX_SNIFFED_REQUEST_LINE)}`)), http1);
});

test('when sniffing stops early, a request line cut short stays HTTP/1; nothing sent, or other bytes, are TCP', () => {
  const atTimeout = (b: Buffer | string) => classifyFinal(Buffer.from(b), 'timeout');
  assert.deepEqual(atTimeout(Buffer.alloc(0)), { protocol: 'tcp' });
  assert.deepEqual(atTimeout('PURGE /adm'), { protocol: 'http1' });
  assert.deepEqual(atTimeout('GET /admin HTTP/1'), { protocol: 'http1' });
  assert.deepEqual(atTimeout('\r\n'), { protocol: 'tcp' }, 'empty lines alone start nothing');
  assert.deepEqual(atTimeout('hello'), { protocol: 'tcp' }, 'a bare token: a text protocol waiting for its answer');
  assert.deepEqual(atTimeout('\r\nget /a'), { protocol: 'http1' });
  assert.deepEqual(atTimeout('PRI * HTTP/2.0\r\n'), { protocol: 'h2' });
  assert.deepEqual(atTimeout('hello\tworld'), { protocol: 'tcp' });
  assert.deepEqual(atTimeout('PING\r\n'), { protocol: 'tcp' });
  assert.deepEqual(atTimeout(Buffer.from([0x16, 0x03])), { protocol: 'tcp' });
  assert.deepEqual(atTimeout('GET / HTTP/1.1\r\n'), { protocol: 'http1' });
});

test('at the client\'s end an unfinished request line is TCP (it can never become a request); a finished one and an h2 preface stay HTTP', () => {
  const atEnd = (b: string) => classifyFinal(Buffer.from(b), 'eof');
  assert.deepEqual(atEnd('hello again'), { protocol: 'tcp' });
  assert.deepEqual(atEnd('via-kube'), { protocol: 'tcp' });
  assert.deepEqual(atEnd('GET /admin HTTP/1'), { protocol: 'tcp' });
  assert.deepEqual(atEnd('GET /admin HTTP/1.1\r\n'), { protocol: 'http1' });
  assert.deepEqual(atEnd('PRI * HTTP/2.0\r\n'), { protocol: 'h2' });
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

test('a client that pauses in the middle of its request line past the sniff timeout is still HTTP/1', { timeout: 10_000 }, async () => {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection');
  const client = connect((server.address() as { port: number }).port, '127.0.0.1');
  client.write('QUERY /adm');
  const [socket] = (await accepted) as [import('node:net').Socket];
  const r = await sniff(socket, 50);
  assert.deepEqual(r, { protocol: 'http1', by: 'timeout' });
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

test('a client that sends two words and half-closes: TCP at its end, and its bytes and its end both reach the consumer', { timeout: 10_000 }, async () => {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection');
  const client = connect((server.address() as { port: number }).port, '127.0.0.1');
  client.end('hello again');
  const [socket] = (await accepted) as [import('node:net').Socket];
  try {
    const r = await sniff(socket, 5000);
    assert.deepEqual(r, { protocol: 'tcp', by: 'eof' });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    await once(socket, 'end');
    assert.equal(Buffer.concat(chunks).toString(), 'hello again');
  } finally {
    client.destroy();
    socket.destroy();
    server.close();
  }
});
