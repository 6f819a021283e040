import { createServer, type Server } from 'node:http';
import { closeHttpServer } from './close-http-server';
import { NodemeshError } from '../errors';
import { sleep } from '../util/deadline';
import { handleFd } from '../datapath/pod-network';
import { PausedListener, type OfferedListener } from '../proxy/handover/listeners';

/** How long a new agent waits for the previous one to release the health port (its stop is drain + a few seconds). */
export const HEALTH_PORT_WAIT_MS = 120_000;
/** Node's default listen backlog, for a health socket served again from its descriptor. */
const HEALTH_BACKLOG = 511;

/**
 * Kubelet probes on 15021: /healthz/live answers while the process runs, /healthz/ready
 * only once the agent has synced its configuration and installed capture.
 */
export class HealthServer {
  private server: Server | undefined;
  private port: number | undefined;
  private paused: PausedListener | undefined;

  constructor(private readonly isReady: () => { ready: boolean; reason: string }) {}

  /**
   * Binds the health port. During a rolling update the previous agent of this node may
   * still hold it: the port is the hand-off lock, so wait for it (the caller touches
   * capture only once it is ours), and the old agent lets go of it last. The old agent's
   * stop is bounded (drain + margin), so a port still taken after `waitMs` is held by
   * something else: fail with what to check rather than wait for ever.
   */
  async start(port: number, host = '0.0.0.0', log?: { info(o: object, m: string): void }, waitMs = HEALTH_PORT_WAIT_MS): Promise<void> {
    const deadline = Date.now() + waitMs;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.bind(port, host);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
        if (Date.now() >= deadline) {
          throw new NodemeshError('ERR_NM_HEALTH_PORT_BUSY', `health port ${port} is still in use after ${waitMs} ms`, {
            hint: `a previous agent should have released it by then; find what holds it (ss -ltnp 'sport = :${port}') or pick another with --health-port`,
            cause: err,
          });
        }
        if (attempt % 10 === 0) log?.info({ port }, 'health port in use (a previous agent is still stopping); waiting');
        await sleep(Math.min(1000, deadline - Date.now()));
      }
    }
  }

  /** Serves on a listening socket a previous agent handed over (no wait for the port). */
  async adopt(fd: number, port: number): Promise<void> {
    await this.bind(port, { fd });
  }

  /** The health listener for the next agent. */
  offer(): OfferedListener | undefined {
    if (!this.server || this.port === undefined) return undefined;
    return { meta: { kind: 'health', family: 4, port: this.port }, fd: handleFd(this.server) };
  }

  /** The next agent answers the probes now: stop answering, keep the socket for `resume`. */
  pause(): void {
    if (!this.server) return;
    this.paused = PausedListener.pause(this.server, HEALTH_BACKLOG);
    this.server = undefined;
  }

  /** The hand-over failed: answer the probes again, on the same kernel socket. */
  async resume(): Promise<void> {
    const paused = this.paused;
    this.paused = undefined;
    if (paused && this.port !== undefined) await this.bind(this.port, { fd: paused.takeFd() });
  }

  /** The next agent confirmed: the socket is its alone. */
  release(): void {
    this.paused?.release();
    this.paused = undefined;
  }

  private async bind(port: number, where: string | { fd: number }): Promise<void> {
    const server = createServer((req, res) => {
      if (req.url === '/healthz/live') {
        res.writeHead(200).end('live\n');
        return;
      }
      if (req.url === '/healthz/ready') {
        const { ready, reason } = this.isReady();
        res.writeHead(ready ? 200 : 503).end(`${reason}\n`);
        return;
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if (typeof where === 'string') server.listen(port, where, () => resolve());
      else server.listen({ fd: where.fd, backlog: HEALTH_BACKLOG }, () => resolve());
    });
    this.server = server;
    this.port = port;
  }

  /** Releases the port now (a probe's keep-alive connection must not hold the successor back). */
  async close(): Promise<void> {
    this.release();
    const s = this.server;
    this.server = undefined;
    if (s) await closeHttpServer(s);
  }
}
