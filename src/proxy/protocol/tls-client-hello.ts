/**
 * Just enough of a TLS ClientHello parser to read the SNI (RFC 8446 §4.1.2, RFC 6066 §3)
 * from the first record, for routing TLS that the proxy passes through untouched.
 * Returns 'incomplete' while the record is not all there, undefined when it is not a
 * ClientHello we understand.
 */
export function parseTlsClientHello(buf: Buffer): { sni?: string } | 'incomplete' | undefined {
  if (buf.length < 5) return 'incomplete';
  if (buf[0] !== 0x16) return undefined;
  const recordLen = buf.readUInt16BE(3);
  if (buf.length < 5 + recordLen) return 'incomplete';
  let p = 5;
  const end = 5 + recordLen;
  if (buf[p] !== 0x01) return undefined; // handshake type client_hello
  p += 4; // type + 3-byte length
  p += 2 + 32; // legacy_version + random
  if (p >= end) return undefined;
  p += 1 + buf[p]!; // session id
  if (p + 2 > end) return undefined;
  p += 2 + buf.readUInt16BE(p); // cipher suites
  if (p >= end) return undefined;
  p += 1 + buf[p]!; // compression methods
  if (p + 2 > end) return {};
  const extEnd = Math.min(end, p + 2 + buf.readUInt16BE(p));
  p += 2;
  while (p + 4 <= extEnd) {
    const type = buf.readUInt16BE(p);
    const len = buf.readUInt16BE(p + 2);
    p += 4;
    if (type === 0 /* server_name */ && p + 5 <= extEnd) {
      // server_name_list: u16 length, then entries of (u8 type, u16 length, name).
      let q = p + 2;
      const listEnd = Math.min(p + len, extEnd);
      while (q + 3 <= listEnd) {
        const nameType = buf[q]!;
        const nameLen = buf.readUInt16BE(q + 1);
        q += 3;
        if (nameType === 0 && q + nameLen <= listEnd) return { sni: buf.subarray(q, q + nameLen).toString('ascii') };
        q += nameLen;
      }
    }
    p += len;
  }
  return {};
}
