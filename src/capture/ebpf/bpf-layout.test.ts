import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeAddress16, encodeAddress16, encodeCidrKey, encodeIpKey, encodeListenerKey, encodePortKey, decodeOrigDst, AF_INET, AF_INET6 } from './bpf-layout';

test('IPv4 addresses are stored IPv4-mapped, as the BPF programs write them', () => {
  assert.equal(encodeAddress16('10.244.1.2').toString('hex'), '00000000000000000000ffff0af40102');
  assert.equal(decodeAddress16(encodeAddress16('10.244.1.2'), AF_INET), '10.244.1.2');
});

test('IPv6 addresses round-trip, with :: compression like inet_ntop', () => {
  for (const a of ['fd00:244:1::2', '::1', '2001:db8::', 'fe80::1:2:3:4', '1:2:3:4:5:6:7:8']) {
    assert.equal(decodeAddress16(encodeAddress16(a), AF_INET6), a);
  }
  assert.equal(encodeAddress16('::ffff:1.2.3.4').toString('hex'), '00000000000000000000ffff01020304');
});

test('keys have the C layouts of nodemesh.h', () => {
  const lk = encodeListenerKey(0x0102030405060708n, AF_INET6);
  assert.equal(lk.length, 16);
  assert.equal(lk.readBigUInt64LE(0), 0x0102030405060708n);
  assert.equal(lk.readUInt32LE(8), AF_INET6);
  const ik = encodeIpKey('10.0.0.1');
  assert.equal(ik.length, 20);
  assert.equal(ik.readUInt32LE(0), AF_INET);
  assert.deepEqual([...encodePortKey(8080, 1)], [0x90, 0x1f, 1, 0]);
});

test('CIDR keys count IPv4 prefix bits after the 96-bit mapped prefix', () => {
  assert.equal(encodeCidrKey('10.0.0.0/8').readUInt32LE(0), 104);
  assert.equal(encodeCidrKey('fd00::/8').readUInt32LE(0), 8);
  assert.throws(() => encodeCidrKey('10.0.0.0/33'), { code: 'ERR_NM_INVALID_CIDR' });
  assert.throws(() => encodeCidrKey('nonsense'), { code: 'ERR_NM_INVALID_CIDR' });
});

test('nm_orig_dst decodes family, host-order port and address', () => {
  const b = Buffer.alloc(24);
  b.writeUInt32LE(AF_INET, 0);
  b.writeUInt16LE(80, 4);
  encodeAddress16('10.96.0.10').copy(b, 8);
  assert.deepEqual(decodeOrigDst(b), { family: AF_INET, port: 80, address: '10.96.0.10' });
});
