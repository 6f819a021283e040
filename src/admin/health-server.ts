import { createServer, type Server } from 'node:http';

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
   * capture only once it is ours), and the old agent lets go of it last.
   */
  async start(port: number, host = '0.0.0.0', log?: { info(o: object, m: string): void }): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.bind(port, host);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
        if (attempt % 10 === 0) log?.info({ port }, 'health port in use (a previous agent is still stopping); waiting');
        await new Promise((r) => setTimeout(r, 1000));
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

  async close(): Promise<void> {
    const s = this.server;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
}
