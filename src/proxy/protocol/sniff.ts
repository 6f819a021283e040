import type { Readable } from 'node:stream';
import { http1RequestLine, requestLineStarted, MAX_SNIFFED_REQUEST_LINE } from './http1-request-line';
import { parseTlsClientHello } from './tls-client-hello';

export type Protocol = 'http1' | 'h2' | 'tls' | 'tcp';

export interface SniffResult {
  protocol: Protocol;
  /** SNI from a TLS ClientHello. */
  sni?: string;
  /** How the protocol was decided. */
  by: 'appProtocol' | 'sniffed' | 'timeout' | 'eof';
}

/** The HTTP/2 connection preface (RFC 9113 §3.4). */
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/**
 * What a Service port's appProtocol (or port name, as Istio reads `http-web`, `grpc`…)
 * says; undefined when it says nothing and sniffing decides.
 */
export function protocolFromAppProtocol(appProtocol: string | undefined, portName?: string): Protocol | undefined {
  const value = (appProtocol ?? '').toLowerCase();
  if (value === 'http' || value === 'http1' || value === 'kubernetes.io/http') return 'http1';
  if (value === 'http2' || value === 'h2c' || value === 'grpc' || value === 'kubernetes.io/h2c' || value === 'grpc-web') return 'h2';
  if (value === 'https' || value === 'tls' || value === 'kubernetes.io/wss') return 'tls';
  if (value === 'tcp' || value === 'mysql' || value === 'mongo' || value === 'redis') return 'tcp';
  const name = (portName ?? '').toLowerCase();
  if (/^(tcp|mysql|mongo|redis)(-|$)/.test(name)) return 'tcp';
  return undefined;
}

/** Classifies the first bytes; undefined when more bytes are needed. */
export function classify(buf: Buffer): { protocol: Protocol; sni?: string } | undefined {
  if (buf.length === 0) return undefined;
  // TLS handshake record: 0x16, version 0x03 0x0[0-4].
  if (buf[0] === 0x16) {
    if (buf.length < 3) return undefined;
    if (buf[1] !== 0x03) return { protocol: 'tcp' };
    const hello = parseTlsClientHello(buf);
    if (hello === 'incomplete') return undefined;
    return hello ? { protocol: 'tls', ...(hello.sni ? { sni: hello.sni } : {}) } : { protocol: 'tls' };
  }
  if (buf[0] === 0x50 /* P */) {
    const n = Math.min(buf.length, H2_PREFACE.length);
    if (buf.subarray(0, n).equals(H2_PREFACE.subarray(0, n))) return n === H2_PREFACE.length ? { protocol: 'h2' } : undefined;
  }
  // HTTP/1 by the request-line grammar, not by a list of methods: any other method (or a
  // leading empty line) relayed as TCP would take the connection, and every request
  // pipelined on it, past L7.
  const line = http1RequestLine(buf);
  if (line === 'yes') return { protocol: 'http1' };
  if (line === 'no') return { protocol: 'tcp' };
  return buf.length >= MAX_SNIFFED_REQUEST_LINE ? { protocol: 'http1' } : undefined;
}

/**
 * The protocol when no more bytes will be waited for: what is still undecided is TCP, but
 * at the sniff timeout a request line under way (a method and its space) or an h2 preface
 * cut short stays HTTP, so that a client cannot pause in the middle of its request line
 * to be relayed past L7 (the parser then times the head out with 408). At the client's
 * end (`eof`) an unfinished request line is no request, and can never become one: its
 * bytes are a text protocol's ("hello again", then the client half-closes), relayed as
 * TCP. A bare token ("hello") and a silent client (server-first protocols: MySQL, SMTP…)
 * get TCP either way. On a port with HTTP authorization rules, TCP is judged at L4,
 * where those rules fail closed.
 */
export function classifyFinal(buf: Buffer, at: 'timeout' | 'eof'): { protocol: Protocol; sni?: string } {
  const decided = classify(buf);
  if (decided) return decided;
  // A preface cut short past "PRI " is HTTP/2's (the h2 server answers what follows).
  if (buf.length >= 4 && buf.equals(H2_PREFACE.subarray(0, buf.length))) return { protocol: 'h2' };
  return at === 'timeout' && http1RequestLine(buf) === 'more' && requestLineStarted(buf) ? { protocol: 'http1' } : { protocol: 'tcp' };
}

/**
 * Reads the first bytes of a connection without consuming them (they are put back with
 * unshift) and decides its protocol. A client that sends nothing within `timeoutMs` is
 * treated as a server-first protocol (MySQL, SMTP…) and gets opaque TCP. Any byte
 * stream: a socket, or a tunnel stream.
 */
export function sniff(socket: Readable, timeoutMs: number): Promise<SniffResult> {
  return new Promise((resolve) => {
    let buf: Buffer = Buffer.alloc(0);
    let done = false;
    const finish = (result: SniffResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.removeListener('readable', onReadable);
      socket.removeListener('end', onEnd);
      socket.pause();
      // Put back what was read. At the client's end this runs before 'end' is emitted
      // (onReadable sees the end first), so the bytes and then the end reach the consumer.
      if (buf.length > 0 && !socket.readableEnded) socket.unshift(buf);
      resolve(result);
    };
    // Paused mode ('readable' + read()), not 'data': it shows the client's end while the
    // bytes can still be put back, which after an 'end' event they cannot.
    const onReadable = () => {
      for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) {
        buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
        const r = classify(buf);
        // 16 KiB is more than any ClientHello we need to see (request lines: 8 KiB, in classify).
        if (r) return finish({ ...r, by: 'sniffed' });
        if (buf.length > 16 * 1024) return finish({ protocol: 'tcp', by: 'sniffed' });
      }
      if (endReceived(socket)) finish({ ...classifyFinal(buf, 'eof'), by: 'eof' });
    };
    const onEnd = () => finish({ ...classifyFinal(buf, 'eof'), by: 'eof' });
    const timer = setTimeout(() => finish({ ...classifyFinal(buf, 'timeout'), by: 'timeout' }), timeoutMs);
    socket.on('readable', onReadable);
    socket.once('end', onEnd);
  });
}

/** The peer's end has arrived (it may not have been emitted as 'end' yet). */
function endReceived(stream: Readable): boolean {
  return (stream as unknown as { _readableState?: { ended?: boolean } })._readableState?.ended === true;
}
