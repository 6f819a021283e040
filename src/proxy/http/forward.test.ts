import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { constants as h2c, createServer, type ServerHttp2Stream } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { H2Sessions } from '../upstream/h2-sessions';
import { isConnectFailure, type UpstreamTransport } from '../upstream/transport';
import { Cancellation } from './cancellation';
import { forwardH2, type AttemptRequest } from './forward';

const direct: UpstreamTransport = {
  kind: 'direct',
  key: 'test',
  open: (target) => new Promise((resolve, reject) => {
    const s = netConnect(target.port, target.address);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  }),
};

const attempt = (): AttemptRequest => ({ method: 'POST', path: '/echo', authority: 'upstream', headers: {}, body: Buffer.from('hi'), contentLength: 2, cancel: new Cancellation() });

test('a stream the upstream refuses unprocessed is a connect failure (retried), and a stream reset otherwise is not', async () => {
  const server = createServer();
  let n = 0;
  server.on('stream', (stream: ServerHttp2Stream) => {
    n += 1;
    stream.on('error', () => undefined); // a stream closed with an error code reports it here too
    if (n === 1) stream.close(h2c.NGHTTP2_REFUSED_STREAM);
    else if (n === 2) stream.close(h2c.NGHTTP2_INTERNAL_ERROR);
    else {
      stream.respond({ [h2c.HTTP2_HEADER_STATUS]: 200 });
      stream.end('ok');
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const sessions = new H2Sessions();
  try {
    const refused = await forwardH2(sessions, direct, '127.0.0.1', port, attempt()).then(() => undefined, (err: unknown) => err);
    assert.equal((refused as { code?: string }).code, 'ERR_NM_UPSTREAM_REFUSED_STREAM');
    assert.equal(isConnectFailure(refused), true, 'safe to send again');
    const reset = await forwardH2(sessions, direct, '127.0.0.1', port, attempt()).then(() => undefined, (err: unknown) => err);
    assert.ok(reset, 'a reset stream fails');
    assert.equal(isConnectFailure(reset), false, 'the upstream may have acted on it: not retried as a connect failure');
    const ok = await forwardH2(sessions, direct, '127.0.0.1', port, attempt());
    assert.equal(ok.status, 200);
    ok.body?.discard();
  } finally {
    await sessions.close(Date.now() + 1000);
    server.close();
  }
});
