import { logger } from '../../log';
import { startDnsServer, type DnsServerOptions } from './server';

const log = logger('sim-dns');

/** `nodemesh sim dns-serve`: serves until SIGTERM or SIGINT (what `down` and a node's removal send), then exits 0. */
export async function serveDnsUntilSignal(options: DnsServerOptions): Promise<number> {
  const server = await startDnsServer(options);
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await server.close();
  log.info({ bound: server.bound }, 'DNS server stopped');
  return 0;
}
