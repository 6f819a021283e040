/**
 * An L7 test app run inside simulated pods: one process serving several protocols, every
 * answer naming the app that gave it so that tests can tell backends apart.
 *
 *   node dist/src/sim/apps/l7-app.js [--name NAME] [--http PORT] [--h2c PORT] [--grpc PORT]
 *                                    [--ws PORT] [--tls PORT] [--tcp PORT]
 *
 * Defaults: name = $POD_NAME or the hostname; ports http 8080, h2c 8081, grpc 9090, ws 8082,
 * tls 8443, tcp 9000. A port of 0 binds a free port; `off` leaves that protocol out. Every
 * listener is on `::` dual-stack. Once all are bound it prints one line
 * `listening {"http":8080,"h2c":8081,...}` (the bound ports).
 *
 * HTTP/1.1 (--http, and the WebSocket port for non-upgrade requests) and HTTP/2 with prior
 * knowledge (--h2c) share these routes; every response has `x-served-by: NAME`:
 *   /                  JSON {name, method, path, headers, rawHeaders, remoteAddress, remotePort, protocol}
 *                      (rawHeaders: names and values as received, alternating)
 *                      (protocol "HTTP/1.1" or "HTTP/2"; any unmatched path answers the same)
 *   /echo              the request body back, the JSON above in header `x-app-info`
 *   /status/CODE       that status (200-599), the JSON above as body
 *   /delay/MS          the JSON above after MS milliseconds
 *   /flaky/KEY/N       the first N requests for KEY (counted in this process) get 503, then 200
 *   /bytes/N           N bytes ('x'), streamed with back-pressure
 *   /headers           JSON of the request headers
 *   /count             JSON {name, total, paths: {path: n}} of the requests served (not
 *                      counting /count itself); DELETE /count resets
 *   /slow-body/MS      a chunked body of ?chunks=N (default 5) lines, one every MS ms;
 *                      with ?hold=NAME the first line goes out at once and the rest only
 *                      after /release/NAME (or HOLD_LIMIT_MS, so nothing hangs): a test
 *                      knows the response is in flight instead of guessing from timing
 *   /holds             JSON {held: [NAME...]}: held responses whose first line was sent
 *   /release/NAME      releases a held response (404 when none is held under NAME)
 *   /reset             no answer: the connection (HTTP/2: the stream) is reset
 * gRPC (--grpc, insecure): nodemesh.test.Echo from echo.proto (Unary, ServerStream,
 *   ClientStream, BidiStream); replies carry served_by = NAME.
 * WebSocket (--ws): every message comes back as "NAME: <message>".
 * TLS (--tls): self-signed certificate for CN=NAME (openssl at start-up); writes
 *   "tls NAME sni=<servername>\n", then echoes the bytes.
 * TCP (--tcp): like tcp-echo: "peer <addr> <port> local <addr> <port> name NAME\n", then echo.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { constants as h2constants, createServer as createH2Server, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';

export const PROTOCOLS = ['http', 'h2c', 'grpc', 'ws', 'tls', 'tcp'] as const;
export type Protocol = (typeof PROTOCOLS)[number];
export const DEFAULT_PORTS: Record<Protocol, number> = { http: 8080, h2c: 8081, grpc: 9090, ws: 8082, tls: 8443, tcp: 9000 };

export interface EchoRequest { message: string; count: number; fail_code: number }
export interface EchoReply { message: string; served_by: string; index: number }

/**
 * echo.proto is not compiled by tsc: from dist/src/sim/apps/ it is found in the repository
 * at src/sim/apps/ (four levels up is the root), or next to this file (running from src/).
 */
export function echoProtoPath(): string {
  const candidates = [
    join(__dirname, 'echo.proto'),
    resolve(__dirname, '..', '..', '..', '..', 'src', 'sim', 'apps', 'echo.proto'),
    resolve(__dirname, '..', '..', '..', 'src', 'sim', 'apps', 'echo.proto'),
  ];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`echo.proto not found (looked at ${candidates.join(', ')})`);
  return found;
}

/** The Echo service constructor (field names as in the .proto: served_by, fail_code). */
export function loadEchoService(): grpc.ServiceClientConstructor {
  const def = protoLoader.loadSync(echoProtoPath(), { keepCase: true, defaults: true, longs: Number, enums: String });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { nodemesh: { test: { Echo: grpc.ServiceClientConstructor } } };
  return pkg.nodemesh.test.Echo;
}

export interface AppOptions {
  name: string;
  /** A port per protocol to serve (0 = any free port); protocols left out are not served. */
  ports: Partial<Record<Protocol, number>>;
}

export interface RunningApp {
  name: string;
  ports: Partial<Record<Protocol, number>>;
  close(): Promise<void>;
}

/** The smallest common surface of HTTP/1 and HTTP/2-compat requests and responses. */
interface Req {
  method?: string;
  url?: string;
  headers: Record<string, string | string[] | undefined>;
  /** Names and values as received, alternating: repeated headers stay apart. */
  rawHeaders: string[];
  socket: { remoteAddress?: string; remotePort?: number };
  on(event: 'data', cb: (chunk: Buffer) => void): unknown;
  on(event: 'end', cb: () => void): unknown;
  on(event: 'error', cb: (err: Error) => void): unknown;
  resume(): unknown;
}
interface Res {
  statusCode: number;
  headersSent: boolean;
  setHeader(name: string, value: string | number): unknown;
  write(chunk: string | Buffer): boolean;
  end(chunk?: string | Buffer): unknown;
  once(event: 'drain' | 'close', cb: () => void): unknown;
  on(event: 'close', cb: () => void): unknown;
  readonly writableEnded: boolean;
  readonly destroyed?: boolean;
}

/** A held slow body is released after this even if no test asks: nothing may hang on a test that died. */
const HOLD_LIMIT_MS = 60_000;

class Routes {
  readonly counts = new Map<string, number>();
  readonly flaky = new Map<string, number>();
  /** Held slow bodies (?hold=NAME) whose first chunk was sent, by NAME: calling it releases the rest. */
  readonly holds = new Map<string, () => void>();
  total = 0;

  constructor(readonly name: string) {}

  handle(req: Req, res: Res, protocol: 'HTTP/1.1' | 'HTTP/2', reset: () => void): void {
    const url = new URL(req.url ?? '/', 'http://app.invalid');
    const path = url.pathname;
    const parts = path.split('/').filter(Boolean);
    const method = req.method ?? 'GET';
    if (parts[0] !== 'count' && parts[0] !== 'holds' && parts[0] !== 'release') {
      this.total += 1;
      this.counts.set(path, (this.counts.get(path) ?? 0) + 1);
    }
    res.setHeader('x-served-by', this.name);
    const info = {
      name: this.name,
      method,
      path: req.url ?? '/',
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      remoteAddress: req.socket.remoteAddress,
      remotePort: req.socket.remotePort,
      protocol,
    };
    const json = (status: number, body: unknown) => {
      const text = `${JSON.stringify(body)}\n`;
      res.statusCode = status;
      res.setHeader('content-type', 'application/json');
      res.setHeader('content-length', Buffer.byteLength(text));
      res.end(text);
    };
    req.on('error', () => undefined);
    switch (parts[0]) {
      case 'echo': {
        const chunks: Buffer[] = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => {
          const body = Buffer.concat(chunks);
          const infoText = JSON.stringify(info);
          try {
            res.setHeader('x-app-info', infoText);
          } catch {
            res.setHeader('x-app-info', encodeURIComponent(infoText));
          }
          const type = req.headers['content-type'];
          res.setHeader('content-type', typeof type === 'string' ? type : 'application/octet-stream');
          res.setHeader('content-length', body.length);
          res.statusCode = 200;
          res.end(body);
        });
        return;
      }
      case 'status': {
        const code = Number(parts[1]);
        if (!Number.isInteger(code) || code < 200 || code > 599) return json(400, { error: 'status must be 200-599', name: this.name });
        req.resume();
        if (code === 204 || code === 304) {
          res.statusCode = code;
          res.end();
          return;
        }
        return json(code, info);
      }
      case 'delay': {
        const ms = Math.max(0, Number(parts[1]) || 0);
        req.resume();
        const timer = setTimeout(() => json(200, { ...info, delayedMs: ms }), ms);
        res.on('close', () => clearTimeout(timer));
        return;
      }
      case 'flaky': {
        const key = parts[1] ?? '';
        const failures = Number(parts[2] ?? 1) || 0;
        const attempt = (this.flaky.get(key) ?? 0) + 1;
        this.flaky.set(key, attempt);
        req.resume();
        return json(attempt <= failures ? 503 : 200, { ...info, key, attempt, failures });
      }
      case 'bytes': {
        const total = Math.max(0, Math.floor(Number(parts[1]) || 0));
        req.resume();
        res.statusCode = 200;
        res.setHeader('content-type', 'application/octet-stream');
        res.setHeader('content-length', total);
        const block = Buffer.alloc(Math.min(total, 64 * 1024), 0x78);
        let left = total;
        let closed = false;
        res.once('close', () => { closed = true; });
        const pump = () => {
          while (left > 0 && !closed) {
            const n = Math.min(left, block.length);
            left -= n;
            if (!res.write(n === block.length ? block : block.subarray(0, n))) {
              res.once('drain', pump);
              return;
            }
          }
          if (!closed) res.end();
        };
        pump();
        return;
      }
      case 'headers':
        req.resume();
        return json(200, req.headers);
      case 'count':
        req.resume();
        if (method === 'DELETE') {
          this.counts.clear();
          this.total = 0;
        }
        return json(200, { name: this.name, total: this.total, paths: Object.fromEntries(this.counts) });
      case 'slow-body': {
        const ms = Math.max(0, Number(parts[1]) || 0);
        const chunks = Math.max(1, Number(url.searchParams.get('chunks') ?? 5) || 5);
        const hold = url.searchParams.get('hold');
        req.resume();
        res.statusCode = 200;
        res.setHeader('content-type', 'text/plain');
        let sent = 0;
        let timer: NodeJS.Timeout | undefined;
        let limit: NodeJS.Timeout | undefined;
        const next = () => {
          sent += 1;
          res.write(`${this.name} chunk ${sent}\n`);
          if (sent >= chunks) {
            clearInterval(timer);
            res.end();
          }
        };
        const stream = () => { if (sent < chunks) timer = setInterval(next, ms); };
        res.on('close', () => {
          clearInterval(timer);
          clearTimeout(limit);
          if (hold) this.holds.delete(hold);
        });
        if (!hold) {
          stream();
          return;
        }
        next();
        if (sent >= chunks) return;
        limit = setTimeout(() => release(), HOLD_LIMIT_MS);
        const release = () => {
          clearTimeout(limit);
          if (this.holds.get(hold) !== release) return;
          this.holds.delete(hold);
          stream();
        };
        this.holds.set(hold, release);
        return;
      }
      case 'holds':
        req.resume();
        return json(200, { name: this.name, held: [...this.holds.keys()] });
      case 'release': {
        req.resume();
        const release = this.holds.get(parts[1] ?? '');
        if (!release) return json(404, { name: this.name, error: `no response held as '${parts[1] ?? ''}'` });
        release();
        return json(200, { name: this.name, released: parts[1] });
      }
      case 'reset':
        req.resume();
        reset();
        return;
      default:
        req.resume();
        return json(200, info);
    }
  }
}

function listen(server: NetServer | HttpServer, port: number): Promise<number> {
  return new Promise((resolveBound, reject) => {
    server.once('error', reject);
    server.listen({ port, host: '::', ipv6Only: false }, () => {
      server.off('error', reject);
      const addr = server.address();
      resolveBound(typeof addr === 'object' && addr ? addr.port : port);
    });
  });
}

function selfSignedCert(name: string): { key: Buffer; cert: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'nodemesh-l7-app-'));
  try {
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    const cn = name.replace(/[^A-Za-z0-9._-]/g, '_') || 'l7-app';
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-days', '1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
    return { key: readFileSync(key), cert: readFileSync(cert) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function grpcImplementation(name: string): grpc.UntypedServiceImplementation {
  const failure = (code: number, what: string): Partial<grpc.StatusObject> => ({
    code: code as grpc.status,
    details: `${what}: fail_code ${code} requested (served by ${name})`,
  });
  const unary: grpc.handleUnaryCall<EchoRequest, EchoReply> = (call, callback) => {
    const req = call.request;
    if (req.fail_code) return callback(failure(req.fail_code, 'Unary'));
    callback(null, { message: req.message, served_by: name, index: 0 });
  };
  const serverStream: grpc.handleServerStreamingCall<EchoRequest, EchoReply> = (call) => {
    const req = call.request;
    for (let i = 0; i < req.count; i++) call.write({ message: req.message, served_by: name, index: i });
    if (req.fail_code) call.emit('error', failure(req.fail_code, 'ServerStream'));
    else call.end();
  };
  const clientStream: grpc.handleClientStreamingCall<EchoRequest, EchoReply> = (call, callback) => {
    let message = '';
    let n = 0;
    let failed = 0;
    call.on('data', (req: EchoRequest) => {
      message += req.message;
      n += 1;
      if (req.fail_code && !failed) failed = req.fail_code;
    });
    call.on('error', () => undefined);
    call.on('end', () => {
      if (failed) callback(failure(failed, 'ClientStream'));
      else callback(null, { message, served_by: name, index: n });
    });
  };
  const bidi: grpc.handleBidiStreamingCall<EchoRequest, EchoReply> = (call) => {
    let i = 0;
    let done = false;
    call.on('data', (req: EchoRequest) => {
      if (done) return;
      if (req.fail_code) {
        done = true;
        call.emit('error', failure(req.fail_code, 'BidiStream'));
        return;
      }
      call.write({ message: req.message, served_by: name, index: i++ });
    });
    call.on('error', () => undefined);
    call.on('end', () => { if (!done) { done = true; call.end(); } });
  };
  return { Unary: unary, ServerStream: serverStream, ClientStream: clientStream, BidiStream: bidi } as grpc.UntypedServiceImplementation;
}

/** Starts every listener in `options.ports`; resolves with the bound ports. */
export async function startApp(options: AppOptions): Promise<RunningApp> {
  const { name } = options;
  const routes = new Routes(name);
  const ports: Partial<Record<Protocol, number>> = {};
  const closers: Array<() => Promise<void>> = [];
  const sockets = new Set<Socket>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };
  const closeServer = (srv: NetServer) => () => new Promise<void>((r) => srv.close(() => r()));

  const http1Handler = (req: IncomingMessage, res: ServerResponse) => {
    routes.handle(req as unknown as Req, res as unknown as Res, 'HTTP/1.1', () => req.socket.destroy());
  };
  const newHttpServer = () => {
    // A large header limit: a test of the proxy's limits must not trip over the app's.
    const srv = createHttpServer({ maxHeaderSize: 1024 * 1024 }, http1Handler);
    // Malformed requests (smuggling attempts, oversized headers) get Node's own answers:
    // 400, 431, 408, then close.
    srv.on('connection', track);
    return srv;
  };

  try {
    if (options.ports.http !== undefined) {
      const srv = newHttpServer();
      ports.http = await listen(srv, options.ports.http);
      closers.push(closeServer(srv));
    }
    if (options.ports.h2c !== undefined) {
      const srv = createH2Server({}, (req: Http2ServerRequest, res: Http2ServerResponse) => {
        routes.handle(req as unknown as Req, res as unknown as Res, 'HTTP/2', () => req.stream.close(h2constants.NGHTTP2_INTERNAL_ERROR));
      });
      srv.on('connection', track);
      srv.on('sessionError', () => undefined);
      ports.h2c = await listen(srv as unknown as NetServer, options.ports.h2c);
      closers.push(closeServer(srv as unknown as NetServer));
    }
    if (options.ports.ws !== undefined) {
      const srv = newHttpServer();
      const wss = new WebSocketServer({ server: srv });
      wss.on('connection', (ws: WebSocket) => {
        ws.on('error', () => undefined);
        ws.on('message', (data: RawData, isBinary: boolean) => {
          const payload = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
          const out = Buffer.concat([Buffer.from(`${name}: `), payload]);
          ws.send(isBinary ? out : out.toString('utf8'), { binary: isBinary });
        });
      });
      ports.ws = await listen(srv, options.ports.ws);
      closers.push(async () => {
        for (const c of wss.clients) c.terminate();
        await new Promise<void>((r) => wss.close(() => r()));
        await closeServer(srv)();
      });
    }
    if (options.ports.tls !== undefined) {
      const srv = createTlsServer({ ...selfSignedCert(name) }, (s: TLSSocket) => {
        s.on('error', () => s.destroy());
        s.write(`tls ${name} sni=${s.servername || ''}\n`);
        s.pipe(s);
      });
      srv.on('connection', track);
      srv.on('tlsClientError', () => undefined);
      ports.tls = await listen(srv, options.ports.tls);
      closers.push(closeServer(srv));
    }
    if (options.ports.tcp !== undefined) {
      const srv = createNetServer({ allowHalfOpen: true }, (s: Socket) => {
        s.on('error', () => s.destroy());
        s.write(`peer ${s.remoteAddress} ${s.remotePort} local ${s.localAddress} ${s.localPort} name ${name}\n`);
        s.pipe(s);
      });
      srv.on('connection', track);
      ports.tcp = await listen(srv, options.ports.tcp);
      closers.push(closeServer(srv));
    }
    if (options.ports.grpc !== undefined) {
      const srv = new grpc.Server();
      srv.addService(loadEchoService().service, grpcImplementation(name));
      ports.grpc = await new Promise<number>((r, reject) => {
        srv.bindAsync(`[::]:${options.ports.grpc}`, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : r(port)));
      });
      closers.push(async () => { srv.forceShutdown(); });
    }
  } catch (err) {
    for (const s of sockets) s.destroy();
    await Promise.all(closers.map((c) => c()));
    throw err;
  }

  return {
    name,
    ports,
    async close() {
      for (const s of sockets) s.destroy();
      await Promise.all(closers.map((c) => c()));
    },
  };
}

/** Parses the command line; throws on an unknown flag or a bad port. */
export function parseAppArgs(argv: string[]): AppOptions {
  const ports: Partial<Record<Protocol, number>> = { ...DEFAULT_PORTS };
  let name = process.env.POD_NAME || hostname();
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = argv[i + 1];
    if (!flag.startsWith('--') || value === undefined) throw new Error(`bad argument '${flag}'`);
    const key = flag.slice(2);
    i += 1;
    if (key === 'name') {
      name = value;
    } else if ((PROTOCOLS as readonly string[]).includes(key)) {
      if (value === 'off') {
        delete ports[key as Protocol];
        continue;
      }
      const port = Number(value);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad port '${value}' for ${flag}`);
      ports[key as Protocol] = port;
    } else {
      throw new Error(`unknown flag '${flag}'`);
    }
  }
  return { name, ports };
}

async function main(): Promise<void> {
  let options: AppOptions;
  try {
    options = parseAppArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`${(err as Error).message}\nusage: l7-app [--name NAME] [--http PORT] [--h2c PORT] [--grpc PORT] [--ws PORT] [--tls PORT] [--tcp PORT]  (PORT 0 = any, off = none)`);
    process.exit(2);
  }
  const app = await startApp(options);
  console.log(`listening ${JSON.stringify(app.ports)}`);
  const stop = () => {
    void app.close().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(`l7-app: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
