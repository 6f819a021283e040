import { isIP } from 'node:net';
import { NodemeshError } from '../../errors';

/**
 * Byte-exact encoders for the map keys and values of ebpf/nodemesh.h. Offsets follow the
 * C layouts (natural alignment, little-endian x86/arm64 hosts); a change there needs a
 * change here and a new _vN map name.
 */

export const AF_INET = 2;
export const AF_INET6 = 10;

export const POD_CAPTURE_OUTBOUND = 1 << 0;
export const POD_CAPTURE_INBOUND = 1 << 1;

export const DIR_OUTBOUND = 0;
export const DIR_INBOUND = 1;

/** enum nm_stat, in order. */
export const STAT_NAMES = [
  'connect_redirected',
  'connect_no_listener',
  'connect_excluded',
  'origdst_stored',
  'getsockopt_answered',
  'lookup_steered',
  'sockhash_inserted',
  'msg_redirected',
] as const;
export type StatName = (typeof STAT_NAMES)[number];

/** 16-byte address: IPv6 as is, IPv4 as IPv4-mapped (::ffff:a.b.c.d). */
export function encodeAddress16(address: string): Buffer {
  const out = Buffer.alloc(16);
  const kind = isIP(address);
  if (kind === 4) {
    out.writeUInt16BE(0xffff, 10);
    address.split('.').forEach((octet, i) => out.writeUInt8(Number(octet), 12 + i));
    return out;
  }
  if (kind === 6) {
    const [head, tail] = splitIPv6(address);
    head.forEach((group, i) => out.writeUInt16BE(group, i * 2));
    tail.forEach((group, i) => out.writeUInt16BE(group, 16 - (tail.length - i) * 2));
    return out;
  }
  throw new NodemeshError('ERR_NM_INVALID_ADDRESS', `'${address}' is not an IPv4 or IPv6 address`);
}

function splitIPv6(address: string): [number[], number[]] {
  let text = address.split('%')[0]!;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const o = v4[1]!.split('.').map(Number);
    text = text.slice(0, -v4[1]!.length) + `${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
  }
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const idx = text.indexOf('::');
  if (idx < 0) return [parse(text), []];
  return [parse(text.slice(0, idx)), parse(text.slice(idx + 2))];
}

export function decodeAddress16(buf: Buffer, family: number): string {
  if (family === AF_INET) return `${buf[12]}.${buf[13]}.${buf[14]}.${buf[15]}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(buf.readUInt16BE(i).toString(16));
  // Compress the longest run of zero groups, as inet_ntop does.
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

export function familyOf(address: string): number {
  return isIP(address) === 6 ? AF_INET6 : AF_INET;
}

/** __u64 netns cookie (nm_enrolled_v1 key). */
export function encodeU64(value: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(value);
  return b;
}

/** struct nm_pod_config { __u32 flags; __u32 reserved; } */
export function encodePodConfig(flags: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(flags >>> 0, 0);
  return b;
}

export function decodePodConfig(buf: Buffer): { flags: number } {
  return { flags: buf.readUInt32LE(0) };
}

/** struct nm_listener_key { __u64 netns_cookie; __u32 family; __u32 pad; } */
export function encodeListenerKey(netnsCookie: bigint, family: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(netnsCookie, 0);
  b.writeUInt32LE(family, 8);
  return b;
}

/** struct nm_ip_key { __u32 family; __u8 addr[16]; } (20 bytes) */
export function encodeIpKey(address: string): Buffer {
  const b = Buffer.alloc(20);
  b.writeUInt32LE(familyOf(address), 0);
  encodeAddress16(address).copy(b, 4);
  return b;
}

/** struct nm_orig_dst { __u32 family; __u16 port; __u16 pad; __u8 addr[16]; } (24 bytes) */
export function decodeOrigDst(buf: Buffer): { family: number; port: number; address: string } {
  const family = buf.readUInt32LE(0);
  return { family, port: buf.readUInt16LE(4), address: decodeAddress16(buf.subarray(8, 24), family) };
}

/** struct nm_port_key { __u16 port; __u8 direction; __u8 pad; } */
export function encodePortKey(port: number, direction: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt16LE(port, 0);
  b.writeUInt8(direction, 2);
  return b;
}

/** struct nm_cidr_key { __u32 prefixlen; __u8 addr[16]; } IPv4 prefixes count from bit 96. */
export function encodeCidrKey(cidr: string): Buffer {
  const [address, lenText] = cidr.split('/');
  const kind = isIP(address ?? '');
  const len = Number(lenText);
  const max = kind === 4 ? 32 : 128;
  if (!kind || lenText === undefined || !Number.isInteger(len) || len < 0 || len > max) {
    throw new NodemeshError('ERR_NM_INVALID_CIDR', `'${cidr}' is not a CIDR (address/prefix-length)`);
  }
  const b = Buffer.alloc(20);
  b.writeUInt32LE(kind === 4 ? 96 + len : len, 0);
  encodeAddress16(address!).copy(b, 4);
  return b;
}

/** A per-CPU u64 array value, summed over CPUs. */
export function sumPerCpuU64(buf: Buffer): bigint {
  let total = 0n;
  for (let off = 0; off + 8 <= buf.length; off += 8) total += buf.readBigUInt64LE(off);
  return total;
}

export function encodeU32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value >>> 0);
  return b;
}
