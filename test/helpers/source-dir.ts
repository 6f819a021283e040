import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { adminGet } from '../../src/admin/admin-client';
import { waitFor, type AgentHandle } from '../../src/sim/harness';

/** What /debug/config shows of the configuration an agent applies. */
export interface DebugConfig {
  version: number | string;
  routes: string[];
  policies: Array<{ service: string; ejections: Array<{ key: string; until: number; times: number }> }>;
  rejected: Array<{ file: string; object: string; path?: string; reason: string; code: string }>;
}

export const debugConfig = (agent: AgentHandle): Promise<DebugConfig> => adminGet<DebugConfig>(agent.socket, '/debug/config');

/**
 * Writes (or with `text` undefined, removes) a file of a watched source directory and
 * waits until every agent has loaded a new configuration. The file is written in
 * `scratchDir` (outside the watched directory) and renamed in: the watcher sees one whole file.
 */
export async function writeSourceFile(dir: string, scratchDir: string, name: string, text: string | undefined, agents: readonly AgentHandle[]): Promise<void> {
  const before = await Promise.all(agents.map(debugConfig));
  const target = join(dir, name);
  if (text === undefined) rmSync(target, { force: true });
  else {
    const tmp = join(scratchDir, `${name}.tmp`);
    writeFileSync(tmp, text);
    renameSync(tmp, target);
  }
  await waitFor(`the agents to load ${name}`, async () => {
    const now = await Promise.all(agents.map(debugConfig));
    return now.every((c, i) => c.version !== before[i]!.version);
  }, 10_000);
}
