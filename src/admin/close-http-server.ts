import type { Server } from 'node:http';

/**
 * Stops an http.Server at once: no new connections, and the open ones (idle keep-alive
 * probes and scrapes, or a slow client) are destroyed instead of waited for, so that
 * close() resolves promptly whatever the clients do.
 */
export function closeHttpServer(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    // The callback comes also when the server was not listening (with an error we ignore).
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
