import { copyFileSync, readdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { adminGet } from '../../admin/admin-client';
import { ROOT, waitFor, type AgentHandle, type SimFixture } from '../harness';
import type { GetResult, LoadResult } from '../apps/shop-app';

/** What every step of the demo works with: the simulation, its agents, where to write. */

export const DEMO_CONFIG_DIR = join(ROOT, 'deploy', 'examples', 'sim', 'demo');
/** Files the demo applies at its steps (not loaded at the start). */
export const DEMO_STEPS_DIR = join(DEMO_CONFIG_DIR, 'steps');
export const SHOP_APP = join(ROOT, 'dist', 'src', 'sim', 'apps', 'shop-app.js');
/** How long an agent may take to load a changed file of its source directory. */
const CONFIG_LOAD_TIMEOUT_MS = 15_000;

export interface DemoOutput {
  /** A step's heading. */
  heading(text: string): void;
  /** A line of what was done or measured. */
  line(text: string): void;
}

export const consoleOutput: DemoOutput = {
  heading: (text) => console.log(`\n\u001b[1m==> ${text}\u001b[0m`),
  line: (text) => console.log(`    ${text}`),
};

export interface DemoContext {
  sim: SimFixture;
  node1: AgentHandle;
  node2: AgentHandle;
  /** The agents' watched source directory (a copy of deploy/examples/sim/demo). */
  source: string;
  /** node1's access log (the frontend's and the load generator's outbound calls). */
  accessLog1: string;
  out: DemoOutput;
}

/** Copies the demo's configuration (the top-level files of deploy/examples/sim/demo) into `dir`. */
export function copyDemoConfig(dir: string): void {
  for (const f of readdirSync(DEMO_CONFIG_DIR)) {
    const from = join(DEMO_CONFIG_DIR, f);
    if (statSync(from).isFile()) copyFileSync(from, join(dir, f));
  }
}

const configVersion = async (agent: AgentHandle) => (await adminGet<{ version: number | string }>(agent.socket, '/debug/config')).version;

/**
 * Applies a file of deploy/examples/sim/demo/steps: copied into the watched directory in
 * one rename (the watcher sees a whole file), then waits until both agents run a new
 * configuration.
 */
export async function applyStep(ctx: DemoContext, file: string): Promise<void> {
  const agents = [ctx.node1, ctx.node2];
  const before = await Promise.all(agents.map(configVersion));
  const tmp = join(ctx.source, `.${file}.tmp`);
  copyFileSync(join(DEMO_STEPS_DIR, file), tmp);
  renameSync(tmp, join(ctx.source, file));
  await waitFor(`the agents to load ${file}`, async () => {
    const now = await Promise.all(agents.map(configVersion));
    return now.every((v, i) => v !== before[i]);
  }, CONFIG_LOAD_TIMEOUT_MS);
}

/** `shop-app load` in a pod: N requests to the frontend. */
export async function load(ctx: DemoContext, pod: string, url: string, count: number, concurrency = 4): Promise<LoadResult> {
  return JSON.parse(lastLine(await ctx.sim.runInPod(pod, ['node', SHOP_APP, 'load', url, '--count', String(count), '--concurrency', String(concurrency)]))) as LoadResult;
}

/** `shop-app get` in a pod: one request. */
export async function get(ctx: DemoContext, pod: string, url: string, method = 'GET', timeoutMs = 5000): Promise<GetResult> {
  return JSON.parse(lastLine(await ctx.sim.runInPod(pod, ['node', SHOP_APP, 'get', url, '--method', method, '--timeout', String(timeoutMs)]))) as GetResult;
}

function lastLine(out: string): string {
  return out.split('\n').at(-1) ?? '';
}

/** "42 (21.0%)" */
export function share(n: number, of: number): string {
  return `${n} (${of > 0 ? ((100 * n) / of).toFixed(1) : '0.0'}%)`;
}
