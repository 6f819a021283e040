import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, constants as h2c, createServer, type ClientHttp2Session, type Http2Session, type ServerHttp2Stream } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { SessionSet } from './http2-close';

/** Status of one request, or the error code its stream closed with. */
function statusOf(client: ClientHttp2Session, path: string): Promise<string> {
  return new Promise((resolve) => {
    const stream = client.request({ [h2c.HTTP2_HEADER_PATH]: path });
    stream.once('response', (h) => { resolve(String(h[h2c.HTTP2_HEADER_STATUS])); stream.resume(); });
    stream.once('error', () => resolve(`rst ${stream.rstCode}`));
    stream.once('close', () => resolve(`closed ${stream.rstCode}`));
    stream.end();
  });
}

test('a drain GOAWAY refuses no stream the client sent before it heard of it', async () => {
  const sessions = new SessionSet();
  const server = createServer();
  server.on('session', (s) => sessions.add(s));
  let first = true;
  server.on('stream', (stream: ServerHttp2Stream) => {
    // The drain starts while the server is still reading the client's second HEADERS
    // (both arrive in one read): a GOAWAY naming the last stream processed so far would
    // refuse it although the client sent it in good faith.
    if (first) {
      first = false;
      sessions.goAway(Date.now() + 5000);
    }
    stream.respond({ [h2c.HTTP2_HEADER_STATUS]: 200 });
    stream.end('ok');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const client = connect(`http://127.0.0.1:${port}`);
  try {
    await once(client, 'connect');
    let goaway = false;
    client.once('goaway', () => { goaway = true; });
    // Two requests in one tick: their HEADERS leave in one write.
    const answers = await Promise.all([statusOf(client, '/a'), statusOf(client, '/b')]);
    assert.deepEqual(answers, ['200', '200']);
    assert.equal(goaway, true, 'the client heard the GOAWAY');
    // The session then closes of itself (no stream left), within the deadline.
    if (!client.closed) await once(client, 'close');
  } finally {
    client.destroy();
    sessions.destroy();
    server.close();
  }
});

test('a drain GOAWAY still ends a session whose peer never answers the ping, by the deadline', { timeout: 10_000 }, async () => {
  const sessions = new SessionSet();
  const server = createServer();
  const serverSession = new Promise<Http2Session>((resolve) => server.once('session', (s) => { sessions.add(s); resolve(s); }));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const socket = netConnect(port, '127.0.0.1');
  const client = connect(`http://127.0.0.1:${port}`, { createConnection: () => socket });
  try {
    await once(client, 'connect');
    const session = await serverSession;
    // A frozen peer: it reads nothing more, so no PING ACK ever comes back.
    socket.pause();
    const ended = once(session, 'close');
    sessions.goAway(Date.now() + 200);
    await ended;
  } finally {
    client.destroy();
    sessions.destroy();
    server.close();
  }
});
