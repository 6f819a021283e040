import { readFileSync } from 'node:fs';

/** The simulator's own long-running processes (sidecars, the CA): is one alive, end one, read its log. */

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM, wait for the drain, then SIGKILL. */
export async function endProcess(pid: number, graceMs = 8000): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && pidAlive(pid)) await new Promise((r) => setTimeout(r, 50));
  if (pidAlive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

/** The end of a log file, for an error message. */
export function logTail(path: string, bytes = 2000): string {
  try {
    return readFileSync(path, 'utf8').slice(-bytes);
  } catch {
    return '(no log)';
  }
}

/** A process's argv, or undefined when it is gone. */
export function cmdline(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return undefined;
  }
}
