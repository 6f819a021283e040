import { ipToBigInt, type IpFamily } from '../../../config/ip';

/**
 * An address block of an authorization rule (`ipBlocks`, `source.ip`, `destination.ip`):
 * a CIDR or a single address (IPv4 or IPv6), parsed once when the policy is compiled so
 * that a request costs one comparison per block. The request's own address is parsed once
 * per request (`parseAddress`).
 */

export interface IpBlock {
  family: IpFamily;
  /** The block's address shifted right by the host bits. */
  network: bigint;
  /** Host bits (32 - prefix for IPv4). */
  shift: bigint;
  /** As written, for messages. */
  text: string;
}

export interface ParsedAddress {
  family: IpFamily;
  value: bigint;
}

/** The block `text` means, or the problem with it. */
export function parseIpBlock(text: string): IpBlock | string {
  const slash = text.indexOf('/');
  const address = ipToBigInt(slash < 0 ? text : text.slice(0, slash));
  if (!address) return `"${text}" is not an IP address or CIDR block (e.g. 10.0.0.1, 10.0.0.0/16, fd00::/64)`;
  const width = address.family === 4 ? 32 : 128;
  const bitsText = slash < 0 ? String(width) : text.slice(slash + 1);
  const bits = /^[0-9]{1,3}$/.test(bitsText) ? Number(bitsText) : NaN;
  if (!(bits >= 0 && bits <= width)) return `"${text}" has prefix length "${bitsText}": use 0 to ${width} for an IPv${address.family} block`;
  const shift = BigInt(width - bits);
  return { family: address.family, network: address.value >> shift, shift, text };
}

/** The request's address; undefined when it is not one (matches no block). */
export function parseAddress(ip: string | undefined): ParsedAddress | undefined {
  return ip === undefined ? undefined : ipToBigInt(ip);
}

export function inBlock(block: IpBlock, address: ParsedAddress | undefined): boolean {
  return address !== undefined && address.family === block.family && address.value >> block.shift === block.network;
}
