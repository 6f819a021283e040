import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { readFileSync, statSync } from 'node:fs';
import { createServer, isIP, type Server, type Socket } from 'node:net';
import { NodemeshError, describeError } from '../../errors';
import { logger } from '../../log';
import { encodeResponse, parseQuery, RCODE_FORMERR, RCODE_NOTIMP, RCODE_SERVFAIL, UDP_MAX_BYTES, type DnsResponse } from './message';
import { answerQuestion, DNS_TTL_SECONDS, type DnsZone } from './zone';

/**
 * The simulator's DNS server (`nodemesh sim dns-serve`): answers from a zone file that
 * `sim up` rewrites (atomically, by rename) whenever the topology changes. The file is
 * checked on every query (one stat), so an answer given after `up` returned is always
 * from the new topology, with no signal or reload race. UDP and TCP on port 53 of the
 * addresses given; one process per simulated node, listening on the node's bridge.
 */

const log = logger('sim-dns');
/** A TCP client that sends nothing is closed after this (RFC 7766 suggests seconds). */
const TCP_IDLE_MS = 10_000;

export interface DnsServerOptions {
  zoneFile: string;
  addresses: string[];
  /** 53 unless told (tests use 0: an ephemeral port). */
  port?: number;
}

export interface DnsServer {
  /** The bound "address:port"s, UDP (TCP has the same port per address). */
  bound: Array<{ address: string; port: number }>;
  close(): Promise<void>;
}

/** The zone, reread when the file changed (new inode, size or mtime). */
class ZoneFile {
  private zone: DnsZone | undefined;
  private stamp = '';

  constructor(private readonly path: string) {}

  current(): DnsZone {
    const st = statSync(this.path);
    const stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    if (this.zone === undefined || stamp !== this.stamp) {
      this.zone = JSON.parse(readFileSync(this.path, 'utf8')) as DnsZone;
      this.stamp = stamp;
    }
    return this.zone;
  }
}

/** The response bytes for one query message; undefined for what must not be answered. */
export function respond(zone: () => DnsZone, msg: Buffer, maxBytes: number): Buffer | undefined {
  const query = parseQuery(msg);
  if (!query) return undefined;
  const fail = (rcode: number): Buffer => encodeResponse(query, { rcode, authoritative: false, answers: [], ttl: DNS_TTL_SECONDS }, maxBytes);
  if (query.opcode !== 0) return fail(RCODE_NOTIMP);
  if (!query.question) return fail(RCODE_FORMERR);
  let response: DnsResponse;
  try {
    response = answerQuestion(zone(), query.question);
  } catch (err) {
    log.warn({ err: describeError(err) }, 'zone file unreadable: SERVFAIL');
    return fail(RCODE_SERVFAIL);
  }
  return encodeResponse(query, response, maxBytes);
}

function serveTcp(socket: Socket, zone: () => DnsZone): void {
  let pending = Buffer.alloc(0);
  socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
  socket.on('error', () => socket.destroy());
  socket.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    // RFC 1035 4.2.2: each message is preceded by its two-byte length.
    while (pending.length >= 2) {
      const len = pending.readUInt16BE(0);
      if (pending.length < 2 + len) break;
      const out = respond(zone, pending.subarray(2, 2 + len), 65535);
      pending = pending.subarray(2 + len);
      if (!out) {
        socket.destroy();
        return;
      }
      const prefix = Buffer.alloc(2);
      prefix.writeUInt16BE(out.length);
      socket.write(Buffer.concat([prefix, out]));
    }
  });
}

function listenUdp(address: string, port: number, zone: () => DnsZone): Promise<UdpSocket> {
  return new Promise((resolve, reject) => {
    const socket = isIP(address) === 6 ? createSocket({ type: 'udp6', ipv6Only: true }) : createSocket({ type: 'udp4' });
    socket.once('error', reject);
    socket.on('message', (msg, rinfo) => {
      const out = respond(zone, msg, UDP_MAX_BYTES);
      if (out) socket.send(out, rinfo.port, rinfo.address);
    });
    socket.bind({ address, port, exclusive: true }, () => {
      socket.off('error', reject);
      socket.on('error', (err) => log.warn({ address, err: describeError(err) }, 'udp socket error'));
      resolve(socket);
    });
  });
}

function listenTcp(address: string, port: number, zone: () => DnsZone): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer((socket) => serveTcp(socket, zone));
    server.once('error', reject);
    server.listen({ host: address, port, ...(isIP(address) === 6 ? { ipv6Only: true } : {}) }, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

export async function startDnsServer(options: DnsServerOptions): Promise<DnsServer> {
  const file = new ZoneFile(options.zoneFile);
  file.current(); // fail at start, not at the first query, when the file is missing
  const zone = (): DnsZone => file.current();
  const udp: UdpSocket[] = [];
  const tcp: Server[] = [];
  const bound: DnsServer['bound'] = [];
  const close = async (): Promise<void> => {
    for (const s of udp) s.close();
    await Promise.all(tcp.map((s) => new Promise<void>((r) => s.close(() => r()))));
  };
  try {
    for (const address of options.addresses) {
      const u = await listenUdp(address, options.port ?? 53, zone);
      udp.push(u);
      const port = u.address().port;
      tcp.push(await listenTcp(address, port, zone));
      bound.push({ address, port });
    }
  } catch (err) {
    await close();
    throw new NodemeshError('ERR_NM_SIM_DNS', `the DNS server could not listen on ${options.addresses.join(', ')} port ${options.port ?? 53}: ${describeError(err)}`, {
      hint: `is another process bound to port ${options.port ?? 53} in this namespace, or is an address missing (the node bridge)?`,
      cause: err,
    });
  }
  log.info({ bound, zoneFile: options.zoneFile }, 'DNS server listening');
  return { bound, close };
}
