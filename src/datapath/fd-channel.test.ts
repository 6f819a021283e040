import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FdChannel, listenFdChannels, serverFromFd } from './fd-channel';
import { fdOf } from './fd';

/*
 * Descriptors over the hand-over channel, through the addon (no root): a listening TCP
 * socket sent with a message is the same kernel socket on the other side; a message's
 * descriptors never mix with the next one's; a peer that hangs up is seen; a peer that
 * says nothing runs into the deadline instead of blocking.
 */

test('fd channel: messages carry their own descriptors; end of stream and deadlines', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nm-fd-channel-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'c.sock');
  assert.equal(FdChannel.connect(path), undefined, 'nobody listens: undefined, no error');

  const tcp = createServer((s) => s.end('from the handed listener\n'));
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', () => r()));
  const port = (tcp.address() as AddressInfo).port;
  let serverSide: FdChannel | undefined;
  const accepted = new Promise<FdChannel>((resolve) => {
    void listenFdChannels(path, (c) => resolve(c)).then((s) => t.after(() => s.close()));
  });
  await new Promise((r) => setTimeout(r, 50));
  const client = FdChannel.connect(path)!;
  t.after(() => client.close());
  serverSide = await accepted;
  t.after(() => serverSide?.close());

  await serverSide.send({ n: 1, port }, [fdOf(tcp)], 1000);
  await serverSide.send({ n: 2 }, [], 1000);
  tcp.close(); // the receiver's copy keeps the kernel socket listening
  const first = await client.recv<{ n: number; port: number }>(1000);
  assert.deepEqual(first?.message, { n: 1, port });
  assert.equal(first?.fds.length, 1);
  const second = await client.recv<{ n: number }>(1000);
  assert.deepEqual(second, { message: { n: 2 }, fds: [] }, 'the second message brings no descriptor of the first');

  const adopted = await serverFromFd(first!.fds[0]!, 16);
  adopted.removeAllListeners('connection');
  adopted.on('connection', (s) => s.end('adopted\n'));
  t.after(() => adopted.close());
  const reply = await new Promise<string>((resolve, reject) => {
    let got = '';
    connect(port, '127.0.0.1').on('data', (d) => { got += String(d); }).on('end', () => resolve(got)).on('error', reject);
  });
  assert.equal(reply, 'adopted\n', 'the same listening socket, served by its new owner');

  await assert.rejects(client.recv(100), (err: NodeJS.ErrnoException) => err.code === 'ETIMEDOUT');
  serverSide.close();
  assert.equal(await client.recv(1000), undefined, 'a clean end of stream between messages');
});
