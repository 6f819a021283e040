import { createServer, type Server } from 'node:http';

/**
 * Kubelet probes on 15021: /healthz/live answers while the process runs, /healthz/ready
 * only once the agent has synced its configuration and installed capture.
 */
export class HealthServer {
  private server: Server | undefined;

  constructor(private readonly isReady: () => { ready: boolean; reason: string }) {}

  async start(port: number, host = '0.0.0.0'): Promise<void> {
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
