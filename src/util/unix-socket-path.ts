import { mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import type { Server } from 'node:net';
import { dirname } from 'node:path';

/**
 * A unix socket at a path that a successor process takes over (the admin and hand-over
 * sockets of an instance, during an agent hand-over). libuv unlinks the path a pipe was
 * bound to when the server closes, which would delete the successor's socket; so the
 * server binds a name of its own and renames it into place (atomic, replacing whatever
 * was there). Resolves with the inode, for `removeIfOwn`.
 */
export async function listenAtSharedPath(server: Server, path: string): Promise<number> {
  mkdirSync(dirname(path), { recursive: true });
  const own = `${path}.${process.pid}.tmp`;
  rmSync(own, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(own, () => resolve());
  });
  renameSync(own, path);
  return statSync(path).ino;
}

/** Removes the socket file at `path` only while it is still the one `listenAtSharedPath` made. */
export function removeIfOwn(path: string, ino: number): void {
  try {
    if (statSync(path).ino === ino) rmSync(path, { force: true });
  } catch {
    // already gone
  }
}
