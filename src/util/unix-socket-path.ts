import { mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import type { Server } from 'node:net';
import { dirname } from 'node:path';
import { logger } from '../log';

const log = logger('unix-socket');

/**
 * A unix socket at a path that a successor process takes over (the admin and hand-over
 * sockets of an instance, during an agent hand-over). libuv unlinks the path a pipe was
 * bound to when the server closes, which would delete the successor's socket; so the
 * server binds a name of its own and renames it into place (atomic, replacing whatever
 * was there). Resolves with the file's identity, for `removeIfOwn`.
 */
export async function listenAtSharedPath(server: Server, path: string): Promise<SocketFileId> {
  mkdirSync(dirname(path), { recursive: true });
  const own = `${path}.${process.pid}.tmp`;
  rmSync(own, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(own, () => resolve());
  });
  renameSync(own, path);
  const id = fileId(path);
  log.debug({ path, ...id }, 'socket bound and renamed into place');
  return id;
}

/**
 * A socket file's inode and birth time. The inode alone is not enough: a file system like
 * ext4 reuses a freed inode number at once, so the successor's socket file can carry the
 * number our own, already removed, file had.
 */
export interface SocketFileId {
  ino: number;
  birthtimeMs: number;
}

function fileId(path: string): SocketFileId {
  const st = statSync(path);
  return { ino: st.ino, birthtimeMs: st.birthtimeMs };
}

/** Removes the socket file at `path` only while it is still the one `listenAtSharedPath` made. */
export function removeIfOwn(path: string, id: SocketFileId): void {
  try {
    const now = fileId(path);
    if (now.ino !== id.ino || now.birthtimeMs !== id.birthtimeMs) return;
    rmSync(path, { force: true });
    // Info: a successor whose socket file vanished can be traced to this line.
    log.info({ path, ...id }, 'removed the socket file this process had bound');
  } catch {
    // already gone
  }
}
