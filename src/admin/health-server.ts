import { createServer, type Server } from 'node:http';
import { closeHttpServer } from './close-http-server';
import { NodemeshError } from '../errors';
import { sleep } from '../util/deadline';

/** How long a new agent waits for the previous one to release the health port (its stop is drain + a few seconds). */
export const HEALTH_PORT_WAIT_MS = 120_000;

/**
 * Kubelet probes on 15021: /healthz/live answers while the process runs, /healthz/ready
 * only once the agent has synced its configuration and installed capture.
 */
export class HealthServer {
  private server: Server | undefined;

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

  private async bind(port: number, host: string): Promise<void> {
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
      server.listen(port, host, () => resolve());
    });
    this.server = server;
  }

  /** Releases the port now (a probe's keep-alive connection must not hold the successor back). */
  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s) await closeHttpServer(s);
  }
}
