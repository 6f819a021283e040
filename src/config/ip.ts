import { isIP } from 'node:net';

/**
 * IP address helpers shared by the YAML source, the snapshot and the simulator.
 * Every address the model holds is canonical (lower-case, RFC 5952 compressed IPv6,
 * IPv4-mapped IPv6 turned into plain IPv4), so that lookups by address are exact.
 */

export type IpFamily = 4 | 6;

/** 4 or 6 for a valid address, 0 otherwise (IPv4-mapped IPv6 counts as 6 here). */
export function ipFamily(ip: string): 0 | IpFamily {
  return isIP(ip) as 0 | IpFamily;
}

function ipv6Groups(ip: string): number[] | undefined {
  let text = ip.toLowerCase();
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  // A trailing dotted quad ("::ffff:10.0.0.1") becomes two groups.
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const octets = tail.split('.').map((o) => Number(o));
    if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255)) return undefined;
    const g1 = ((octets[0]! << 8) | octets[1]!).toString(16);
    const g2 = ((octets[2]! << 8) | octets[3]!).toString(16);
    text = `${text.slice(0, lastColon + 1)}${g1}:${g2}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const head = parse(halves[0]!);
  const rest = halves.length === 2 ? parse(halves[1]!) : [];
  const fill = halves.length === 2 ? 8 - head.length - rest.length : 0;
  const groups = [...head, ...new Array<number>(Math.max(fill, 0)).fill(0), ...rest];
  if (groups.length !== 8 || groups.some((g) => !Number.isInteger(g) || g < 0 || g > 0xffff)) return undefined;
  return groups;
}

/**
 * The canonical text of an address, or undefined when `ip` is not one.
 * "FD00:244:1:0:0:0:0:0B" -> "fd00:244:1::b"; "::ffff:10.0.0.1" -> "10.0.0.1".
 */
export function canonicalIP(ip: string): string | undefined {
  if (typeof ip !== 'string') return undefined;
  const family = isIP(ip);
  if (family === 4) return ip;
  if (family !== 6) return undefined;
  const groups = ipv6Groups(ip);
  if (!groups) return undefined;
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return [groups[6]! >> 8, groups[6]! & 0xff, groups[7]! >> 8, groups[7]! & 0xff].join('.');
  }
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first one on a tie.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** The address as a big integer (for prefix checks). */
export function ipToBigInt(ip: string): { family: IpFamily; value: bigint } | undefined {
  const canonical = canonicalIP(ip);
  if (canonical === undefined) return undefined;
  if (isIP(canonical) === 4) {
    const value = canonical.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
    return { family: 4, value };
  }
  const groups = ipv6Groups(canonical)!;
  return { family: 6, value: groups.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n) };
}

/** True when `ip` lies inside `cidr` ("10.244.1.0/24", "fd00:244:1::/64"). */
export function ipInCIDR(ip: string, cidr: string): boolean {
  const slash = cidr.indexOf('/');
  if (slash < 0) return false;
  const base = ipToBigInt(cidr.slice(0, slash));
  const addr = ipToBigInt(ip);
  const bits = Number(cidr.slice(slash + 1));
  if (!base || !addr || base.family !== addr.family) return false;
  const width = base.family === 4 ? 32 : 128;
  if (!Number.isInteger(bits) || bits < 0 || bits > width) return false;
  const shift = BigInt(width - bits);
  return base.value >> shift === addr.value >> shift;
}
