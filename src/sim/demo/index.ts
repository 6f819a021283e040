import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodemeshError } from '../../errors';
import { SimFixture, waitFor, type AgentHandle } from '../harness';
import { benchStep } from './bench-step';
import { consoleOutput, copyDemoConfig, SHOP_APP, type DemoContext, type DemoOutput } from './context';
import type { DemoResult, WorkloadIdentity } from './result';
import { authzStep, metricsStep, mtlsStep } from './security-steps';
import { canaryStep, resilienceStep } from './traffic-steps';

export type { DemoResult } from './result';

/**
 * The demo (`nodemesh demo`, `bash scripts/demo.sh`): the application of
 * deploy/examples/sim/demo on two simulated nodes, one agent per node, then the mesh at
 * work, one step each: (a) a canary, (b) retries and outlier ejection, (c) identities and
 * STRICT mTLS, (d) an authorization denial and its explanation, (e) Istio's metrics,
 * (f) the comparison with sidecars (`nodemesh bench`). Every step prints what it did and
 * what it measured, and returns its figures (DemoResult). The end removes everything
 * (also on failure, SIGINT or SIGTERM); with `keep` the simulation stays up until the
 * command is interrupted.
 */

export interface DemoOptions {
  capture: string;
  keep: boolean;
  /** The simulation's name (default "demo"; the test gives its own). */
  name?: string;
  /** Leave out the comparison (f). */
  skipBench?: boolean;
  out?: DemoOutput;
}

const NODE1_PODS = ['shop/loadgen', 'shop/frontend-1'];
const NODE2_PODS = ['shop/reviews-v1', 'shop/reviews-v2', 'shop/ratings-1', 'shop/ratings-2'];
/** A pod's certificate comes from the simulation's CA after enrolment: a few seconds on a busy machine. */
const ENROL_TIMEOUT_MS = 45_000;

async function identitiesOf(agent: AgentHandle, node: string, pods: string[]): Promise<WorkloadIdentity[]> {
  const records = await waitFor(`${pods.join(', ')} to be enrolled on ${node} with a certificate (log: ${agent.log.slice(-1000)})`, async () => {
    const all = await agent.pods();
    const got = pods.map((p) => all.find((r) => r.key === p));
    return got.every((r) => r?.status === 'enrolled' && r.identity) ? got : undefined;
  }, ENROL_TIMEOUT_MS);
  return records.map((r) => ({ pod: r!.key, node, identity: r!.identity!, ...(r!.certificateExpiry ? { certificateExpiry: r!.certificateExpiry } : {}) }));
}

/** Waits for SIGINT or SIGTERM (the --keep mode's end). */
function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    const done = () => { process.removeListener('SIGINT', done); process.removeListener('SIGTERM', done); resolve(); };
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
}

export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const out = options.out ?? consoleOutput;
  const started = Date.now();
  const name = options.name ?? 'demo';
  const dir = mkdtempSync(join(tmpdir(), 'nodemesh-demo-'));
  const source = join(dir, 'source');
  mkdirSync(source);
  copyDemoConfig(source);
  const sim = new SimFixture(name, source);
  const result: DemoResult = { sim: name, identities: [], elapsedS: 0 };
  const stops: Array<() => void> = [];
  // A signal ends the demo where it is: stop what runs, then the finally below removes it all.
  let interrupted: (() => void) | undefined;
  const interruption = new Promise<never>((_, reject) => {
    interrupted = () => reject(new NodemeshError('ERR_NM_INTERRUPTED', 'the demo was interrupted; everything it made is removed'));
  });
  interruption.catch(() => undefined);
  const onSignal = () => {
    out.line('interrupted: removing the demo');
    for (const s of stops) s();
    interrupted?.();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const run = <T>(work: Promise<T>): Promise<T> => Promise.race([work, interruption]);
  try {
    out.heading('The application: deploy/examples/sim/demo (namespace shop, two simulated nodes)');
    out.line('loadgen -> frontend (frontend-1) -> reviews (reviews-v1, reviews-v2) and ratings (ratings-1, ratings-2); outside is not in the mesh');
    out.line('pods opted in by the annotation nodemesh.dev/mode: ambient; each workload has its own service account');
    await run(sim.up());
    out.line(`simulation ${name}: ${sim.state.nodes.map((n) => n.name).join(', ')}; ${sim.state.pods.length} pods; the simulation's CA signs the workload certificates`);
    await run(Promise.all([
      sim.startApp('shop/frontend-1', [SHOP_APP, 'frontend', '--name', 'frontend-1', '--backends', 'reviews,ratings'], 'frontend'),
      sim.startApp('shop/reviews-v1', [SHOP_APP, 'backend', '--name', 'reviews-v1', '--version', 'v1'], 'reviews-v1'),
      sim.startApp('shop/reviews-v2', [SHOP_APP, 'backend', '--name', 'reviews-v2', '--version', 'v2'], 'reviews-v2'),
      sim.startApp('shop/ratings-1', [SHOP_APP, 'backend', '--name', 'ratings-1', '--version', 'v1'], 'ratings-1'),
      sim.startApp('shop/ratings-2', [SHOP_APP, 'backend', '--name', 'ratings-2', '--version', 'v1'], 'ratings-2'),
    ]));
    const accessLog1 = join(dir, 'node1-access.log');
    out.line(`starting the node agents (--capture ${options.capture}); node1's access log: ${accessLog1}`);
    const [node1, node2] = await run(Promise.all([
      sim.startAgent('node1', ['--capture', options.capture, '--access-log', accessLog1]),
      sim.startAgent('node2', ['--capture', options.capture]),
    ]));
    result.identities = await run(Promise.all([identitiesOf(node1, 'node1', NODE1_PODS), identitiesOf(node2, 'node2', NODE2_PODS)])).then((l) => l.flat());
    const capture = await node1.capture();
    out.line(`capture back-end: ${capture.backend} (${capture.reason}); enrolled: ${result.identities.map((i) => i.pod).join(', ')}`);
    const ctx: DemoContext = { sim, node1, node2, source, accessLog1, out };

    result.canary = await run(canaryStep(ctx));
    result.resilience = await run(resilienceStep(ctx));
    result.mtls = await run(mtlsStep(ctx, result.identities));
    result.authz = await run(authzStep(ctx));
    result.metrics = await run(metricsStep(ctx));
    if (!options.skipBench) result.bench = await run(benchStep(out, options.capture, join(dir, 'bench'), (s) => stops.push(s)));

    result.elapsedS = Math.round((Date.now() - started) / 100) / 10;
    out.heading(`Done in ${result.elapsedS} s`);
    if (options.keep) {
      out.line('The simulation stays up while this command runs (--keep). In another terminal, as root:');
      out.line(`  node dist/src/cli/main.js sim exec --name ${name} shop/loadgen -- node dist/src/sim/apps/shop-app.js get http://frontend.shop.svc.cluster.local/`);
      out.line(`  node dist/src/cli/main.js status --instance ${node1.instance}        (and ${node2.instance})`);
      out.line(`  node dist/src/cli/main.js authz check --instance ${node2.instance} --from shop/frontend-1 --to shop/ratings-1:8080 --path /`);
      out.line(`  curl -s --unix-socket /run/nodemesh/${node2.instance}/admin.sock http://agent/metrics | grep istio_requests_total`);
      out.line(`  the configuration the agents watch: ${source} (edit it; deploy/examples/sim/demo/steps has more)`);
      out.line('Press Ctrl-C here to remove everything (or run `node dist/src/cli/main.js sim down --name ' + name + '`).');
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
      await Promise.race([untilSignal(), agentExited(node1), agentExited(node2)]);
    }
    return result;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    for (const s of stops) s();
    out.heading('Tearing down: sim down removes every namespace, cgroup, pinned BPF object, rule and process it made');
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
    out.line('done');
  }
}

/** Resolves when an agent exits (someone ran `sim down` while --keep waited). */
function agentExited(agent: AgentHandle): Promise<void> {
  return new Promise((resolve) => {
    if (agent.child.exitCode !== null || agent.child.signalCode !== null) resolve();
    else agent.child.once('exit', () => resolve());
  });
}
