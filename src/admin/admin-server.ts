import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { NodemeshError } from '../errors';
import { logger } from '../log';
import { closeHttpServer } from './close-http-server';
import { listenAtSharedPath, removeIfOwn, type SocketFileId } from '../util/unix-socket-path';
import { handleFd } from '../datapath/pod-network';
import { PausedListener, type OfferedListener } from '../proxy/handover/listeners';

/** Node's default listen backlog, for the admin socket served again from its descriptor. */
const ADMIN_BACKLOG = 511;

/** A read-only admin route: returns JSON-able data, or a string for text/plain. */
export type AdminRoute = (query: URLSearchParams) => unknown | Promise<unknown>;

export interface AdminServerOptions {
  registry: Registry;
  routes: Record<string, AdminRoute>;
  /** TCP port on the node (15020), or undefined for none. */
  port?: number;
  host?: string;
  /** A unix socket path, for `nodemesh status` and tests that are not in the node's
   * network namespace. */
  socketPath?: string;
  /** A listening socket for `port` that a previous agent handed over (hand-over): served instead of binding the port. */
  inheritedFd?: number;
}

/**
 * The agent's admin API: /metrics (Prometheus text) plus JSON debug routes. Served on the
 * node's 15020 and on a unix socket beside the agent's run state.
 */
export class AdminServer {
  private readonly servers: Server[] = [];
  private tcp: Server | undefined;
  private paused: PausedListener | undefined;
  private readonly log = logger('admin');

  private readonly bound = new Map<string, SocketFileId>();

  constructor(private readonly options: AdminServerOptions) {}

  async start(): Promise<void> {
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res);
    if (this.options.port !== undefined) await this.listenTcp(this.options.inheritedFd);
    if (this.options.socketPath) {
      // Also under this process's pid: during a hand-over two agents of one instance run,
      // and the newer one takes the common path (`admin-<pid>.sock` still reaches the older).
      for (const path of [this.options.socketPath, pidSocketPath(this.options.socketPath)]) {
        const server = createServer(handler);
        this.bound.set(path, await listenAtSharedPath(server, path));
        this.servers.push(server);
      }
    }
  }

  private async listenTcp(fd?: number): Promise<void> {
    const server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if (fd !== undefined) server.listen({ fd, backlog: ADMIN_BACKLOG }, () => resolve());
      else server.listen(this.options.port, this.options.host ?? '0.0.0.0', () => resolve());
    });
    this.servers.push(server);
    this.tcp = server;
  }

  /** The admin port's listener for the next agent (the unix sockets are per process). */
  offer(): OfferedListener | undefined {
    if (!this.tcp || this.options.port === undefined) return undefined;
    return { meta: { kind: 'admin', family: 4, port: this.options.port }, fd: handleFd(this.tcp) };
  }

  /** The next agent serves the admin port now; this one stays on its unix sockets. */
  pause(): void {
    const server = this.tcp;
    if (!server) return;
    this.tcp = undefined;
    this.servers.splice(this.servers.indexOf(server), 1);
    this.paused = PausedListener.pause(server, ADMIN_BACKLOG);
  }

  /** The hand-over failed: serve the admin port again, on the same kernel socket. */
  async resume(): Promise<void> {
    const paused = this.paused;
    this.paused = undefined;
    if (paused) await this.listenTcp(paused.takeFd());
  }

  /** The next agent confirmed: the socket is its alone. */
  release(): void {
    this.paused?.release();
    this.paused = undefined;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    try {
      if (url.pathname === '/metrics') {
        const body = await this.options.registry.metrics();
        res.writeHead(200, { 'content-type': this.options.registry.contentType });
        res.end(body);
        return;
      }
      const route = this.options.routes[url.pathname];
      if (!route) {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: `no admin route ${url.pathname}`, routes: ['/metrics', ...Object.keys(this.options.routes)] }));
        return;
      }
      const data = await route(url.searchParams);
      if (typeof data === 'string') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(data);
      } else {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(data, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2));
      }
    } catch (err) {
      if (err instanceof NodemeshError) {
        // A question the route cannot answer as asked (a pod that is not there): the caller's to fix.
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: err.message, code: err.code }));
        return;
      }
      this.log.error({ err, path: url.pathname }, 'admin route failed');
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: String(err) }));
    }
  }

  /** A successor agent took over: the common socket path is its own (only `admin-<pid>.sock` is removed at close). */
  disownSharedPath(): void {
    if (this.options.socketPath) this.bound.delete(this.options.socketPath);
  }

  /** Closes now: keep-alive and in-flight admin connections (a scrape, `status`) are cut, never waited for. */
  async close(): Promise<void> {
    this.release();
    await Promise.all(this.servers.map((s) => closeHttpServer(s)));
    // Only our own socket files: a successor may have bound its own at the common path.
    for (const [path, id] of this.bound) removeIfOwn(path, id);
    this.bound.clear();
  }
}

/** `<dir>/admin.sock` → `<dir>/admin-<pid>.sock`: this process's own admin socket. */
export function pidSocketPath(socketPath: string, pid = process.pid): string {
  const dot = socketPath.lastIndexOf('.');
  return dot > socketPath.lastIndexOf('/') ? `${socketPath.slice(0, dot)}-${pid}${socketPath.slice(dot)}` : `${socketPath}-${pid}`;
}
