import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { requireRoot } from '../../test/helpers/privileges';
import { NetnsHandle } from './netns';
import { closeFd, localAddress } from './sockopt';
import { native } from './native';
import { cleanupStack, createTestNetns, threadNetns } from './testkit';

function readAll(socket: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
  });
}

function connectError(port: number, host: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    socket.on('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

test('socketInNetns: a listener and a client created inside a pod netns talk there, not in the root netns', async (t) => {
  if (!requireRoot(t)) return;
  const defer = cleanupStack(t);
  const before = threadNetns();
  const ns = await createTestNetns();
  defer(() => ns.remove());
  const handle = NetnsHandle.open(ns.path);
  defer(() => handle.close());

  // Reserve a port in the root namespace with a bound, non-listening socket: nothing can
  // listen on root 127.0.0.1:port while we hold it, so a refused connection there is
  // certain, and it proves the pod listener below lives elsewhere.
  const root = NetnsHandle.open('/proc/thread-self/ns/net');
  defer(() => root.close());
  const reserved = root.socket({ family: 4, bindAddress: '127.0.0.1', bindPort: 0 });
  defer(() => closeFd(reserved));
  const { port } = localAddress(reserved);
  assert.ok(port > 0);

  const server = handle.listen({ host: '127.0.0.1', port });
  defer(() => server.close());
  await once(server, 'listening');
  assert.equal((server.address() as net.AddressInfo).port, port);
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;

  const client = handle.connect({ host: '127.0.0.1', port });
  await once(client, 'connect');
  const [serverSide] = await accepted;
  const received = readAll(serverSide);
  client.end('hello from inside the pod');
  assert.equal(await received, 'hello from inside the pod');
  serverSide.end();
  client.destroy();

  assert.equal(await connectError(port, '127.0.0.1'), 'ECONNREFUSED', 'the root namespace must not answer on the pod port');
  assert.equal(threadNetns(), before, 'the thread is back in its own network namespace');
});

test('socketInNetns applies options and closes the socket on failure', async (t) => {
  if (!requireRoot(t)) return;
  const defer = cleanupStack(t);
  const before = threadNetns();
  const ns = await createTestNetns();
  defer(() => ns.remove());
  const handle = NetnsHandle.open(ns.path);
  defer(() => handle.close());

  const fd = handle.socket({ family: 6, bindAddress: '::1', bindPort: 0, listenBacklog: 8, mark: 0x4e4d, reusePort: true, transparent: true });
  defer(() => closeFd(fd));
  const local = localAddress(fd);
  assert.equal(local.family, 6);
  assert.equal(local.address, '::1');
  const listing = await ns.exec('ss', '-tlnHe', `sport = :${local.port}`);
  assert.match(listing, /fwmark:0x4e4d/, `ss shows the mark: ${listing}`);

  // Binding an address the namespace does not have fails with the errno, and the thread
  // is still at home afterwards.
  const openFds = (): number => readdirSync('/proc/self/fd').length;
  const fdsBefore = openFds();
  assert.throws(() => handle.socket({ family: 4, bindAddress: '192.0.2.1', bindPort: 0 }), { code: 'EADDRNOTAVAIL', syscall: 'bind' });
  assert.equal(openFds(), fdsBefore, 'the socket of the failed call was closed');
  assert.throws(() => handle.socket({ family: 4, bindAddress: '::1' }), { code: 'ERR_NM_INVALID_ARGUMENT' });
  assert.throws(() => native.socketInNetns(0x7ffffff0, { family: 4 }), { code: 'EBADF' });
  assert.equal(threadNetns(), before);
});

test('netnsCookie differs between namespaces and is stable for one', async (t) => {
  if (!requireRoot(t)) return;
  const defer = cleanupStack(t);
  const a = await createTestNetns();
  defer(() => a.remove());
  const b = await createTestNetns();
  defer(() => b.remove());
  const ha = NetnsHandle.open(a.path);
  defer(() => ha.close());
  const hb = NetnsHandle.open(b.path);
  defer(() => hb.close());
  const ha2 = NetnsHandle.open(a.path);
  defer(() => ha2.close());
  const root = NetnsHandle.open('/proc/self/ns/net');
  defer(() => root.close());

  const cookieA = native.netnsCookie(ha.fd);
  assert.equal(typeof cookieA, 'bigint');
  assert.ok(cookieA > 0n);
  assert.equal(native.netnsCookie(ha.fd), cookieA, 'same fd, same cookie');
  assert.equal(ha2.cookie(), cookieA, 'another fd of the same namespace, same cookie');
  assert.notEqual(hb.cookie(), cookieA);
  assert.notEqual(root.cookie(), cookieA);
  assert.notEqual(root.cookie(), hb.cookie());
});

test('netnsOpen: a vanished namespace is ENOENT with its path, a regular file is not a netns', async (t) => {
  const defer = cleanupStack(t);
  const missing = `/run/netns/nmtest-addon-missing-${process.pid}`;
  assert.throws(() => NetnsHandle.open(missing), (err: unknown) => {
    const e = err as NodeJS.ErrnoException;
    assert.equal(e.code, 'ENOENT');
    assert.equal(e.errno, 2);
    assert.equal(e.syscall, 'open');
    assert.equal(e.path, missing);
    assert.ok(e.message.includes(missing));
    return true;
  });

  const dir = mkdtempSync(path.join(tmpdir(), 'nmtest-addon-'));
  defer(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'not-a-netns');
  writeFileSync(file, 'plain file');
  assert.throws(() => NetnsHandle.open(file), (err: unknown) => {
    const e = err as NodeJS.ErrnoException;
    assert.equal(e.code, 'ERR_NM_NOT_A_NETNS');
    assert.equal(e.path, file);
    return true;
  });
  // A namespace file of another kind is refused too.
  assert.throws(() => NetnsHandle.open('/proc/self/ns/uts'), { code: 'ERR_NM_NOT_A_NETNS', path: '/proc/self/ns/uts' });

  const handle = NetnsHandle.open('/proc/self/ns/net');
  assert.equal(readlinkSync(`/proc/self/fd/${handle.fd}`), readlinkSync('/proc/self/ns/net'));
  handle.close();
  handle.close(); // idempotent
  assert.throws(() => handle.cookie(), { code: 'ERR_NM_CLOSED' });
});
