import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer as createH2Server } from 'node:http2';
import { createServer, type Socket } from 'node:net';
import { spokeHttp2 } from './session-pool';

test('a session is pooled only once the peer sent its HTTP/2 settings; a peer that accepts and stays silent is a connect failure', async () => {
  // Accepts the connection, never answers: an agent that stopped serving mid hand-over.
  const held: Socket[] = [];
  const silent = createServer((s) => { held.push(s); });
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  const h2 = createH2Server();
  h2.listen(0, '127.0.0.1');
  await once(h2, 'listening');
  try {
    const mute = connect(`http://127.0.0.1:${(silent.address() as { port: number }).port}`);
    mute.on('error', () => undefined);
    const err = await spokeHttp2(mute, 'the silent peer', 200).then(() => undefined, (e: unknown) => e as { code?: string; message: string });
    assert.equal(err?.code, 'ETIMEDOUT', String(err?.message));
    assert.equal(mute.destroyed, true, 'the silent session is destroyed, not left for the next request');

    const live = connect(`http://127.0.0.1:${(h2.address() as { port: number }).port}`);
    assert.equal(await spokeHttp2(live, 'the server', 5000), live);
    live.destroy();
  } finally {
    for (const s of held) s.destroy();
    silent.close();
    h2.close();
  }
});
