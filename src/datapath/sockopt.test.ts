import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import * as net from 'node:net';
import { requireRoot } from '../../test/helpers/privileges';
import { NetnsHandle } from './netns';
import { localAddress, originalDestination, peerAddress, setMark, setReusePort, setTransparent, socketCookie } from './sockopt';
import { cleanupStack, createTestNetns, type TestNetns } from './testkit';

/** A test netns with an interface d0 holding 10.9.9.1/24 (tests add fd00:9::1/64), so
 * that 10.9.9.x and fd00:9::x are routable; the REDIRECT rules keep all traffic inside.
 * d0 is a dummy device, or, on kernels without the dummy driver, one end of a veth pair
 * whose both ends stay inside the namespace. */
async function netnsWithDummy(defer: (fn: () => unknown) => void): Promise<{ ns: TestNetns; handle: NetnsHandle }> {
  const ns = await createTestNetns();
  defer(() => ns.remove()); // deleting the namespace removes its iptables rules and links too
  try {
    await ns.ip('link', 'add', 'd0', 'type', 'dummy');
  } catch (err) {
    if (!/Unknown device type/.test(String((err as Error).message))) throw err;
    await ns.ip('link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'd1');
    await ns.ip('link', 'set', 'd1', 'up');
  }
  await ns.ip('addr', 'add', '10.9.9.1/24', 'dev', 'd0');
  await ns.ip('link', 'set', 'd0', 'up');
  const handle = NetnsHandle.open(ns.path);
  defer(() => handle.close());
  return { ns, handle };
}

async function listening(server: net.Server): Promise<number> {
  if (!server.listening) await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

/** Connects from inside the namespace and returns the proxy-side (accepted) socket. */
async function acceptVia(handle: NetnsHandle, server: net.Server, host: string, port: number): Promise<{ accepted: net.Socket; client: net.Socket }> {
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const client = handle.connect({ host, port });
  await once(client, 'connect');
  const [socket] = await accepted;
  return { accepted: socket, client };
}

test('getOriginalDst returns where the app connected before an iptables REDIRECT (IPv4)', async (t) => {
  if (!requireRoot(t)) return;
  const defer = cleanupStack(t);
  const { ns, handle } = await netnsWithDummy(defer);
  const server = handle.listen({ host: '127.0.0.1', port: 0 });
  defer(() => server.close());
  const port = await listening(server);
  await ns.exec('iptables-nft', '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-d', '10.9.9.9', '--dport', '80', '-j', 'REDIRECT', '--to-ports', String(port));

  const { accepted, client } = await acceptVia(handle, server, '10.9.9.9', 80);
  defer(() => { client.destroy(); accepted.destroy(); });
  assert.deepEqual(originalDestination(accepted), { family: 4, address: '10.9.9.9', port: 80 });
  assert.deepEqual(localAddress(accepted), { family: 4, address: '127.0.0.1', port });
  // NAT is invisible to the app: its peer is still the address it connected to.
  assert.deepEqual(peerAddress(client), { family: 4, address: '10.9.9.9', port: 80 });
  assert.equal(peerAddress(accepted).port, localAddress(client).port);

  // With conntrack active, a connection nobody redirected reports its own destination.
  const direct = await acceptVia(handle, server, '127.0.0.1', port);
  defer(() => { direct.client.destroy(); direct.accepted.destroy(); });
  assert.deepEqual(originalDestination(direct.accepted), { family: 4, address: '127.0.0.1', port });
});

test('getOriginalDst reports an IPv4 connection on a dual-stack IPv6 listener as family 4', async (t) => {
  if (!requireRoot(t)) return;
  const defer = cleanupStack(t);
  if (!existsSync('/proc/sys/net/ipv6')) return t.skip('IPv6 is disabled in this kernel');
  const { ns, handle } = await netnsWithDummy(defer);
  const server = handle.listen({ host: '::', port: 0, v6Only: false });
  defer(() => server.close());
  const port = await listening(server);
  await ns.exec('iptables-nft', '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-d', '10.9.9.10', '--dport', '8080', '-j', 'REDIRECT', '--to-ports', String(port));

  const { accepted, client } = await acceptVia(handle, server, '10.9.9.10', 8080);
  defer(() => { client.destroy(); accepted.destroy(); });
  assert.equal(localAddress(accepted).family, 6, 'the accepted socket is AF_INET6');
  assert.equal(localAddress(accepted).address, '::ffff:127.0.0.1');
  assert.deepEqual(originalDestination(accepted), { family: 4, address: '10.9.9.10', port: 8080 });
});

test('getOriginalDst returns an IPv6 original destination (ip6tables REDIRECT)', async (t) => {
  if (!requireRoot(t)) return;
  const defer = cleanupStack(t);
  if (!existsSync('/proc/sys/net/ipv6')) return t.skip('IPv6 is disabled in this kernel');
  const { ns, handle } = await netnsWithDummy(defer);
  await ns.ip('addr', 'add', 'fd00:9::1/64', 'dev', 'd0', 'nodad');
  const server = handle.listen({ host: '::1', port: 0 });
  defer(() => server.close());
  const port = await listening(server);
  await ns.exec('ip6tables-nft', '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-d', 'fd00:9::9', '--dport', '443', '-j', 'REDIRECT', '--to-ports', String(port));

  const { accepted, client } = await acceptVia(handle, server, 'fd00:9::9', 443);
  defer(() => { client.destroy(); accepted.destroy(); });
  assert.deepEqual(originalDestination(accepted), { family: 6, address: 'fd00:9::9', port: 443 });
});

test('setMark, setTransparent, setReusePort: applied to live sockets, EBADF on a bad fd', async (t) => {
  if (!requireRoot(t)) return;
  const defer = cleanupStack(t);
  const ns = await createTestNetns();
  defer(() => ns.remove());
  const handle = NetnsHandle.open(ns.path);
  defer(() => handle.close());
  const server = handle.listen({ host: '127.0.0.1', port: 0 });
  defer(() => server.close());
  const port = await listening(server);

  setMark(server, 0x1234);
  setTransparent(server, true);
  setReusePort(server, true);
  const listing = await ns.exec('ss', '-tlnHe', `sport = :${port}`);
  assert.match(listing, /fwmark:0x1234/, `ss shows the new mark: ${listing}`);

  const badFd = 0x7ffffff0;
  assert.throws(() => setMark(badFd, 1), { code: 'EBADF', errno: 9, syscall: 'setsockopt' });
  assert.throws(() => setReusePort(badFd, true), { code: 'EBADF' });
  assert.throws(() => setTransparent(badFd, true), { code: 'EBADF', syscall: 'getsockname' });
});

test('socketCookie is the kernel socket id ss shows; getOriginalDst is ENOENT without conntrack', async (t) => {
  if (!requireRoot(t)) return;
  const defer = cleanupStack(t);
  const ns = await createTestNetns();
  defer(() => ns.remove());
  const handle = NetnsHandle.open(ns.path);
  defer(() => handle.close());
  const server = handle.listen({ host: '127.0.0.1', port: 0 });
  defer(() => server.close());
  const port = await listening(server);
  const { accepted, client } = await acceptVia(handle, server, '127.0.0.1', port);
  defer(() => { client.destroy(); accepted.destroy(); });

  const cookie = socketCookie(server);
  assert.equal(typeof cookie, 'bigint');
  assert.equal(socketCookie(server), cookie);
  const cookies = new Set([cookie, socketCookie(client), socketCookie(accepted)]);
  // No NAT rule in this namespace, so no conntrack entry: no original destination.
  assert.throws(() => originalDestination(accepted), (err: unknown) => {
    const e = err as NodeJS.ErrnoException;
    assert.equal(e.code, 'ENOENT');
    assert.equal(e.syscall, 'getsockopt');
    assert.match(e.message, /no original destination/);
    return true;
  });
  assert.equal(cookies.size, 3);
  const listing = await ns.exec('ss', '-tlnHe', `sport = :${port}`);
  assert.match(listing, new RegExp(`sk:${cookie.toString(16)}\\b`), `ss shows the cookie ${cookie.toString(16)}: ${listing}`);
});
