import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { adminGet } from '../admin/admin-client';
import type { PodRecord } from '../admin/debug-replies';
import { runDirFor } from '../agent/build-agent';
import { removeSimAgentState } from '../agent/agent-state';
import type { ConnectionRecord } from '../proxy/connection-log';
import { execInPod } from './exec';
import { simDown } from './down';
import { simUp } from './up';
import { simAgentIdentityArgs, startSimCa, stopSimCa } from './identity';
import { withStore } from './state';
import type { SimState } from './state';
import { PROXY_NODE_FLAGS } from '../proxy/node-flags';
import { withDeadline } from '../util/deadline';
import { STEADY_CLIENT, SteadyClient } from './steady-load';
import type { SteadyResult } from './apps/steady-client';

/**
 * A running simulation with processes in it: apps in pods and agents on nodes, started
 * and ended by pid. The integration tests, the demo and the benchmarks all drive the
 * simulator through this one module.
 */

/** The repository root (this file runs from dist/src/sim/). */
export const ROOT = resolve(__dirname, '..', '..', '..');
export const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
/** The stand-in application run inside pods (src/sim/apps/tcp-echo.ts). */
export const ECHO_APP = join(ROOT, 'dist', 'src', 'sim', 'apps', 'tcp-echo.js');
export const EXAMPLE_TOPOLOGY = join(ROOT, 'deploy', 'examples', 'sim', 'topology.yaml');

/** How long a command run in a pod by a test may take (the longest L7 client runs take seconds). */
const RUN_IN_POD_TIMEOUT_MS = 120_000;
/** How long AgentHandle.stop waits: longer than any drain a test gives an agent. */
const AGENT_STOP_TIMEOUT_MS = 90_000;

export function uniqueSimName(prefix: string): string {
  return `${prefix}${process.pid.toString(36)}${Math.floor(Math.random() * 36 ** 2).toString(36)}`.slice(0, 12);
}

/** Waits until `check` returns a truthy value, polling; throws with `what` on timeout. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface ClientResult {
  reply?: string;
  error?: string;
  local?: string;
}

/** A simulation with processes in its pods; `close()` removes everything it made. */
export class SimFixture {
  private readonly children: ChildProcess[] = [];
  state!: SimState;

  constructor(readonly name: string, readonly source: string) {}

  async up(options: { workloadLifetime?: string } = {}): Promise<this> {
    this.state = await simUp({ name: this.name, source: this.source, ...options });
    return this;
  }

  /** Ends the simulation's CA (a CA outage); `startCa` brings it back. */
  async stopCa(): Promise<void> {
    this.state = await withStore(this.name, async (store) => { await stopSimCa(store); return store.state; });
  }

  async startCa(): Promise<void> {
    this.state = await withStore(this.name, async (store) => { await startSimCa(store); return store.state; });
  }

  pod(key: string) {
    const pod = this.state.pods.find((p) => p.key === key);
    if (!pod) throw new Error(`no pod ${key} in simulation ${this.name}`);
    return pod;
  }

  /** Starts the echo server inside a pod on the given ports. */
  async startEchoServer(pod: string, ports: number[] = [8080]): Promise<void> {
    const child = execInPod(this.state, pod, ['node', ECHO_APP, 'server', ...ports.map(String)], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.children.push(child);
    await new Promise<void>((resolveReady, reject) => {
      child.stdout!.setEncoding('utf8');
      child.stdout!.on('data', (d: string) => { if (d.includes('listening')) resolveReady(); });
      child.once('exit', (code) => reject(new Error(`echo server in ${pod} exited with ${code}`)));
    });
  }

  /** Runs the echo client inside a pod and returns what it printed. */
  async client(pod: string, host: string, port: number, message = 'hello'): Promise<ClientResult> {
    return JSON.parse(await this.runInPod(pod, ['node', ECHO_APP, 'client', host, String(port), message])) as ClientResult;
  }

  /**
   * Starts the L7 test app (src/sim/apps/l7-app.ts) inside a pod, e.g.
   * `['--name', 'b1']` (ports default to http 8080, h2c 8081, grpc 9090, ws 8082, tls 8443,
   * tcp 9000); resolves once it prints `listening {...ports}`.
   */
  startL7App(pod: string, args: string[] = []): Promise<void> {
    return this.startApp(pod, [join(ROOT, 'dist', 'src', 'sim', 'apps', 'l7-app.js'), ...args], 'l7 app');
  }

  /**
   * Starts a Node.js app of src/sim/apps inside a pod (`script` and its arguments); resolves
   * once it prints `listening`, fails if it exits first.
   */
  async startApp(pod: string, argv: string[], what = argv[0] ?? 'app'): Promise<void> {
    const child = execInPod(this.state, pod, ['node', ...argv], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.children.push(child);
    await new Promise<void>((resolveReady, reject) => {
      let out = '';
      child.stdout!.setEncoding('utf8');
      child.stdout!.on('data', (d: string) => {
        out += d;
        if (out.includes('listening')) resolveReady();
      });
      child.once('exit', (code) => reject(new Error(`${what} in ${pod} exited with ${code}`)));
    });
  }

  /** Runs the L7 client (src/sim/apps/l7-client.ts) inside a pod; the JSON of its last line. */
  async l7Client(pod: string, args: string[]): Promise<any> {
    const client = join(ROOT, 'dist', 'src', 'sim', 'apps', 'l7-client.js');
    const out = await this.runInPod(pod, ['node', client, ...args]);
    const last = out.split('\n').at(-1) ?? '';
    try {
      return JSON.parse(last);
    } catch {
      throw new Error(`l7-client ${args.join(' ')} in ${pod} printed no JSON: ${out.slice(-500)}`);
    }
  }

  /**
   * Runs a command in a pod to completion and returns its output. A command still running
   * after `timeoutMs` is killed and the call fails, naming it: a test never waits on a
   * client that hangs.
   */
  async runInPod(pod: string, argv: string[], timeoutMs = RUN_IN_POD_TIMEOUT_MS): Promise<string> {
    const child = execInPod(this.state, pod, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => { out += d; });
    const exited = once(child, 'exit');
    try {
      await withDeadline(exited, timeoutMs, `\`${argv.join(' ')}\` in pod ${pod}`);
    } catch (err) {
      child.kill('SIGKILL');
      await exited;
      throw new Error(`${(err as Error).message}; it printed: ${out.slice(-500)}`);
    }
    return out.trim();
  }

  /** A long-lived connection from a pod (the echo app's `hold` mode). */
  hold(pod: string, host: string, port: number): HeldConnection {
    const child = execInPod(this.state, pod, ['node', ECHO_APP, 'hold', host, String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.children.push(child);
    return new HeldConnection(child);
  }

  /**
   * Starts the steady client (src/sim/apps/steady-client.ts) in a pod, e.g.
   * `['http', 'http://web/', '--rate', '500']`; it runs until `stop()` (or the fixture's close).
   */
  steadyClient<R extends SteadyResult = SteadyResult>(pod: string, args: string[]): SteadyClient<R> {
    const child = execInPod(this.state, pod, ['node', STEADY_CLIENT, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.children.push(child);
    return new SteadyClient<R>(child, `steady-client ${args.slice(0, 2).join(' ')} in ${pod}`);
  }

  /**
   * Starts `nodemesh agent` for a node; resolves once its admin socket answers.
   * `ca: false`: without the simulation's CA (no certificates, no tunnel: plaintext).
   */
  async startAgent(node: string, args: string[] = [], source = this.source, options: { ca?: boolean } = {}): Promise<AgentHandle> {
    const agent = this.spawnAgent(node, args, source, options);
    const child = agent.child;
    // An agent that exits during start-up fails at once, with its log.
    const exited = new Promise<never>((_, reject) => {
      child.once('exit', (code, signal) => reject(new Error(`agent exited with ${code ?? signal}: ${agent.log.slice(-2000)}`)));
    });
    exited.catch(() => undefined);
    await Promise.race([
      exited,
      waitFor(`agent for ${node} to serve its admin socket`, async () => (await adminGet<PodRecord[]>(agent.socket, '/debug/pods')) !== undefined, 20_000),
    ]).catch((err: unknown) => {
      throw new Error(`${String(err instanceof Error ? err.message : err)}\nagent log:\n${agent.log.slice(-2000)}`);
    });
    return agent;
  }

  /**
   * Starts `nodemesh agent` for a node without waiting for it (to watch an agent that cannot
   * start). `env`: variables for this agent alone (a test hook such as
   * NODEMESH_HANDOVER_PAUSE_AT); a rolling restart of it does not pass them on.
   */
  spawnAgent(node: string, args: string[] = [], source = this.source, options: { ca?: boolean; env?: Record<string, string> } = {}): AgentHandle {
    const instance = `sim-${this.name}-${node}`;
    // Every agent gets its pods' certificates from the simulation's CA, unless the test
    // gives its own CA flags, runs it against the Kubernetes API (no local CA there) or
    // wants none.
    const identity = options.ca === false || args.includes('--ca-address') || args.includes('--kube') ? [] : simAgentIdentityArgs(this.state, node);
    const child = spawn(process.execPath, [...PROXY_NODE_FLAGS, CLI, 'agent', '--sim', this.name, '--node', node, '--source', source, ...identity, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODEMESH_LOG_LEVEL: 'info', ...options.env },
    });
    this.children.push(child);
    return new AgentHandle(child, instance, { node, args, source, ca: options.ca !== false });
  }

  /** Stops every process this fixture started and removes the simulation and capture state. */
  async close(): Promise<void> {
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    await Promise.all(this.children.map((c) => (c.exitCode === null && c.signalCode === null ? Promise.race([once(c, 'exit'), new Promise((r) => setTimeout(r, 5000))]) : undefined)));
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    removeSimAgentState(this.name);
    await simDown(this.name);
    removeSimAgentState(this.name);
  }
}

/** How an agent was started: what a successor of it (a rolling restart) starts with. */
export interface AgentSpec {
  node: string;
  args: string[];
  source: string;
  /** Started with the simulation's CA (the default). */
  ca: boolean;
}

export class AgentHandle {
  log = '';
  readonly socket: string;

  constructor(readonly child: ChildProcess, readonly instance: string, readonly spec?: AgentSpec) {
    const given = spec?.args.indexOf('--admin-socket') ?? -1;
    this.socket = given >= 0 && spec?.args[given + 1] ? spec.args[given + 1]! : join(runDirFor(instance), 'admin.sock');
    child.stdout!.setEncoding('utf8');
    child.stderr!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => { this.log += d; });
    child.stderr!.on('data', (d: string) => { this.log += d; });
  }

  pods(): Promise<PodRecord[]> {
    return adminGet<PodRecord[]>(this.socket, '/debug/pods');
  }

  connections(pod?: string): Promise<ConnectionRecord[]> {
    return adminGet<ConnectionRecord[]>(this.socket, `/debug/connections${pod ? `?pod=${encodeURIComponent(pod)}` : ''}`);
  }

  capture(): Promise<{ backend: string; reason: string; counters: Record<string, number> }> {
    return adminGet(this.socket, '/debug/capture');
  }

  /** The hand-over state (`/debug/handover`: state idle|sending|receiving|done|failed, counts, duration). */
  handover(): Promise<HandoverStatus> {
    return adminGet<HandoverStatus>(this.socket, '/debug/handover');
  }

  metrics(): Promise<string> {
    return adminGet<string>(this.socket, '/metrics');
  }

  async waitPod(key: string, status: 'enrolled' | 'failed' | 'absent', timeoutMs = 10_000): Promise<PodRecord | undefined> {
    return waitFor(`pod ${key} to be ${status} (log: ${this.log.slice(-1500)})`, async () => {
      const record = (await this.pods()).find((p) => p.key === key);
      if (status === 'absent') return record ? undefined : { key, status: 'enrolled', ips: [], since: '' } as PodRecord;
      return record?.status === status ? record : undefined;
    }, timeoutMs);
  }

  /**
   * SIGTERM and wait for the exit (capture stays installed for the next agent). An agent
   * still running after `timeoutMs` (its stop is bounded by drain + a few seconds) is
   * killed and the call fails with its log.
   */
  async stop(timeoutMs = AGENT_STOP_TIMEOUT_MS): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    const exited = once(this.child, 'exit') as Promise<[number | null]>;
    this.child.kill('SIGTERM');
    try {
      const [code] = await withDeadline(exited, timeoutMs, `the agent ${this.instance}'s stop`);
      return code;
    } catch (err) {
      this.child.kill('SIGKILL');
      await exited;
      throw new Error(`${(err as Error).message}; log:\n${this.log.slice(-2000)}`);
    }
  }

  pidFileExists(): boolean {
    return existsSync(join(runDirFor(this.instance), 'agent.pid'));
  }
}

/** `/debug/handover` as the harness reads it; fields beyond `state` are the agent's to define. */
export interface HandoverStatus {
  state: 'idle' | 'sending' | 'receiving' | 'done' | 'failed' | string;
  durationMs?: number;
  [field: string]: unknown;
}

export class HeldConnection {
  private out = '';
  readonly ready: Promise<void>;

  constructor(private readonly child: ChildProcess) {
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => { this.out += d; });
    // Its end of the pipe gone (it exited): roundTrip says so with what it printed.
    child.stdin!.on('error', (err: Error) => { this.out += `\nerror: stdin ${err.message}`; });
    this.ready = waitFor<boolean>('the held connection to connect', () => {
      if (this.out.startsWith('error')) throw new Error(this.out);
      return this.out.includes('connected');
    }).then(() => undefined);
  }

  /** Sends a line and resolves with everything received once it has come back. */
  async roundTrip(line: string): Promise<string> {
    const mark = this.out.length;
    // A process that has exited (its connection broke) would fail the write with EPIPE:
    // say what it printed instead.
    if (this.child.exitCode !== null || this.child.signalCode !== null) {
      throw new Error(`the held connection's process exited (${this.child.exitCode ?? this.child.signalCode}) before '${line}'; it printed: ${this.out.slice(-500)}`);
    }
    this.child.stdin!.write(`${line}\n`);
    return waitFor(`'${line}' to come back`, () => {
      const got = this.out.slice(mark);
      if (got.includes('error')) throw new Error(got);
      return got.includes(line) ? got : undefined;
    }, 5000);
  }

  close(): void {
    this.child.stdin!.end();
  }
}

export function readJson<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}
