import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { relay, type RelayResult } from './tcp-relay';

/** A loopback relay: client → relay listener → upstream server. */
async function harness(onUpstream: (s: Socket) => void): Promise<{ client: Socket; result: Promise<RelayResult>; upstreamServer: Server; close: () => void }> {
  const upstreamServer = createServer({ allowHalfOpen: true }, onUpstream);
  upstreamServer.listen(0, '127.0.0.1');
  await once(upstreamServer, 'listening');
  const upPort = (upstreamServer.address() as { port: number }).port;
  let resolveResult!: (r: Promise<RelayResult>) => void;
  const result = new Promise<Promise<RelayResult>>((r) => { resolveResult = r; }).then((p) => p);
  const front = createServer({ allowHalfOpen: true }, (down) => {
    const up = connect({ port: upPort, host: '127.0.0.1', allowHalfOpen: true });
    resolveResult(relay(down, up));
  });
  front.listen(0, '127.0.0.1');
  await once(front, 'listening');
  const client = connect({ port: (front.address() as { port: number }).port, host: '127.0.0.1', allowHalfOpen: true });
  await once(client, 'connect');
  return { client, result, upstreamServer, close: () => { front.close(); upstreamServer.close(); } };
}

test('half-close: the client ends its side and still receives everything the server sends after', async () => {
  const h = await harness((s) => {
    let got = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => { got += d; });
    // Only once the client's FIN has arrived does the server answer, then end.
    s.on('end', () => { s.end(`server saw '${got}' and FIN`); });
  });
  let reply = '';
  h.client.setEncoding('utf8');
  h.client.on('data', (d: string) => { reply += d; });
  h.client.end('request');
  await once(h.client, 'end');
  assert.equal(reply, "server saw 'request' and FIN");
  const r = await h.result;
  assert.equal(r.error, undefined);
  assert.equal(r.bytesUp, 'request'.length);
  assert.equal(r.bytesDown, "server saw 'request' and FIN".length);
  h.close();
});

test('back-pressure: a client that does not read makes the relay stop reading from the server', async () => {
  const total = 64 * 1024 * 1024;
  let serverWritten = 0;
  const h = await harness((s) => {
    const chunk = Buffer.alloc(256 * 1024, 1);
    const pump = () => {
      while (serverWritten < total) {
        serverWritten += chunk.length;
        if (!s.write(chunk)) { s.once('drain', pump); return; }
      }
      s.end();
    };
    pump();
  });
  h.client.pause();
  await new Promise((r) => setTimeout(r, 500));
  // Socket buffers on three hops hold a few MB at most; without back-pressure the relay
  // would have read all 64 MB into memory.
  assert.ok(serverWritten < 24 * 1024 * 1024, `server managed to write ${serverWritten} bytes into a stalled relay`);
  let received = 0;
  h.client.on('data', (d: Buffer) => { received += d.length; });
  h.client.resume();
  await once(h.client, 'end');
  assert.equal(received, total);
  h.client.destroy();
  const r = await h.result;
  assert.equal(r.bytesDown, total);
  h.close();
});

test('a reset on one side resets the other instead of a clean end', async () => {
  const h = await harness((s) => { s.on('data', () => s.resetAndDestroy()); });
  h.client.write('x');
  const [err] = (await once(h.client, 'error')) as [NodeJS.ErrnoException];
  assert.equal(err.code, 'ECONNRESET');
  const r = await h.result;
  assert.ok(r.error, 'the relay reports the failure');
  h.close();
});
