import { canonicalIP, ipToBigInt } from '../../config/ip';

/**
 * The DNS wire format (RFC 1035) as far as the simulator's resolver needs it: parse one
 * query's header and question, write a response with A, AAAA and PTR answers. Pure
 * functions on Buffers; the server (server.ts) and the answers (zone.ts) build on them.
 */

export const TYPE_A = 1;
export const TYPE_PTR = 12;
export const TYPE_AAAA = 28;
export const TYPE_ANY = 255;
export const CLASS_IN = 1;
export const CLASS_ANY = 255;

export const RCODE_NOERROR = 0;
export const RCODE_FORMERR = 1;
export const RCODE_SERVFAIL = 2;
export const RCODE_NXDOMAIN = 3;
export const RCODE_NOTIMP = 4;
export const RCODE_REFUSED = 5;

const HEADER_BYTES = 12;
const MAX_NAME_BYTES = 255;
/** RFC 1035 4.2.1: without EDNS, a UDP answer stops here and says it was truncated. */
export const UDP_MAX_BYTES = 512;

export interface DnsQuestion {
  /** As the client wrote it (case kept: answers echo it); without the final dot. */
  name: string;
  type: number;
  class: number;
}

export interface DnsQuery {
  id: number;
  opcode: number;
  recursionDesired: boolean;
  /** undefined when the message has no (or more than one) question or it could not be read. */
  question: DnsQuestion | undefined;
}

export type DnsAnswer = { type: typeof TYPE_A | typeof TYPE_AAAA; address: string } | { type: typeof TYPE_PTR; target: string };

export interface DnsResponse {
  rcode: number;
  /** Authoritative: the name is in the simulation's zone. */
  authoritative: boolean;
  answers: DnsAnswer[];
  /** Seconds; short, because `sim up` changes the topology at any time. */
  ttl: number;
}

/** Reads a (possibly compressed) name at `offset`; returns it and the offset after it. */
function readName(msg: Buffer, offset: number): { name: string; next: number } {
  const labels: string[] = [];
  let at = offset;
  let next = -1;
  let total = 0;
  for (let jumps = 0; ; ) {
    if (at >= msg.length) throw new RangeError('name runs past the message');
    const len = msg[at]!;
    if (len === 0) {
      if (next < 0) next = at + 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      if (at + 1 >= msg.length) throw new RangeError('pointer runs past the message');
      if (++jumps > 16) throw new RangeError('too many compression pointers');
      if (next < 0) next = at + 2;
      at = ((len & 0x3f) << 8) | msg[at + 1]!;
      continue;
    }
    if ((len & 0xc0) !== 0) throw new RangeError('unknown label type');
    if (at + 1 + len > msg.length) throw new RangeError('label runs past the message');
    total += len + 1;
    if (total > MAX_NAME_BYTES) throw new RangeError('name longer than 255 bytes');
    labels.push(msg.toString('latin1', at + 1, at + 1 + len));
    at += 1 + len;
  }
  return { name: labels.join('.'), next };
}

/** The header and the one question of a query; undefined when it is not even a header. */
export function parseQuery(msg: Buffer): DnsQuery | undefined {
  if (msg.length < HEADER_BYTES) return undefined;
  const flags = msg.readUInt16BE(2);
  if (flags & 0x8000) return undefined; // a response: never answer it (no loops)
  const query: DnsQuery = { id: msg.readUInt16BE(0), opcode: (flags >> 11) & 0xf, recursionDesired: (flags & 0x0100) !== 0, question: undefined };
  if (msg.readUInt16BE(4) !== 1) return query;
  try {
    const { name, next } = readName(msg, HEADER_BYTES);
    if (next + 4 > msg.length) return query;
    query.question = { name, type: msg.readUInt16BE(next), class: msg.readUInt16BE(next + 2) };
  } catch {
    /* FORMERR */
  }
  return query;
}

function encodeName(name: string): Buffer {
  const parts: Buffer[] = [];
  for (const label of name.split('.').filter((l) => l.length > 0)) {
    const bytes = Buffer.from(label, 'latin1');
    if (bytes.length > 63) throw new RangeError(`DNS label longer than 63 bytes: ${label}`);
    parts.push(Buffer.from([bytes.length]), bytes);
  }
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

/** An address's 4 or 16 bytes, from the big integer config/ip.ts reads it as. */
export function addressBytes(address: string, bytes: 4 | 16): Buffer {
  const parsed = ipToBigInt(address);
  if (!parsed || (parsed.family === 4) !== (bytes === 4)) throw new RangeError(`not an IPv${bytes === 4 ? 4 : 6} address: ${address}`);
  const out = Buffer.alloc(bytes);
  let value = parsed.value;
  for (let i = bytes - 1; i >= 0; i--, value >>= 8n) out[i] = Number(value & 0xffn);
  return out;
}

function rdata(answer: DnsAnswer): Buffer {
  if (answer.type === TYPE_PTR) return encodeName(answer.target);
  return addressBytes(answer.address, answer.type === TYPE_A ? 4 : 16);
}

/**
 * The response to `query`. Answers name the question by a pointer to it (offset 12).
 * Over UDP (`maxBytes` 512) the answers that do not fit are left out and TC is set, so
 * the client asks again over TCP.
 */
export function encodeResponse(query: DnsQuery, response: DnsResponse, maxBytes = 65535): Buffer {
  const question = query.question ? Buffer.concat([encodeName(query.question.name), u16(query.question.type), u16(query.question.class)]) : Buffer.alloc(0);
  const records: Buffer[] = [];
  let size = HEADER_BYTES + question.length;
  let truncated = false;
  if (query.question) {
    for (const answer of response.answers) {
      const data = rdata(answer);
      const rr = Buffer.concat([u16(0xc000 | HEADER_BYTES), u16(answer.type), u16(CLASS_IN), u32(response.ttl), u16(data.length), data]);
      if (size + rr.length > maxBytes) {
        truncated = true;
        break;
      }
      records.push(rr);
      size += rr.length;
    }
  }
  const flags =
    0x8000 | // QR: a response
    ((query.opcode & 0xf) << 11) |
    (response.authoritative ? 0x0400 : 0) |
    (truncated ? 0x0200 : 0) |
    (query.recursionDesired ? 0x0100 : 0) |
    (response.rcode & 0xf);
  const header = Buffer.concat([u16(query.id), u16(flags), u16(query.question ? 1 : 0), u16(records.length), u16(0), u16(0)]);
  return Buffer.concat([header, question, ...records]);
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** A query message (for tests and the readiness probe of server.ts). */
export function encodeQuery(id: number, name: string, type: number): Buffer {
  return Buffer.concat([u16(id), u16(0x0100), u16(1), u16(0), u16(0), u16(0), encodeName(name), u16(type), u16(CLASS_IN)]);
}

/** Reads a response's rcode, flags and answers (A, AAAA, PTR; others skipped): for tests and probes. */
export function parseResponse(msg: Buffer): { id: number; rcode: number; authoritative: boolean; truncated: boolean; answers: DnsAnswer[] } {
  const flags = msg.readUInt16BE(2);
  const qd = msg.readUInt16BE(4);
  const an = msg.readUInt16BE(6);
  let at = HEADER_BYTES;
  for (let i = 0; i < qd; i++) at = readName(msg, at).next + 4;
  const answers: DnsAnswer[] = [];
  for (let i = 0; i < an; i++) {
    at = readName(msg, at).next;
    const type = msg.readUInt16BE(at);
    const len = msg.readUInt16BE(at + 8);
    const start = at + 10;
    if (type === TYPE_A) answers.push({ type, address: [...msg.subarray(start, start + 4)].join('.') });
    else if (type === TYPE_AAAA) answers.push({ type, address: formatIPv6(msg.subarray(start, start + 16)) });
    else if (type === TYPE_PTR) answers.push({ type, target: readName(msg, start).name });
    at = start + len;
  }
  return { id: msg.readUInt16BE(0), rcode: flags & 0xf, authoritative: (flags & 0x0400) !== 0, truncated: (flags & 0x0200) !== 0, answers };
}

function formatIPv6(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return canonicalIP(groups.join(':'))!;
}
