/**
 * Configuration at scale (not a test): how long a source and the proxy configuration take
 * to become ready with a large cluster, and to apply one change.
 *
 *   npm run bench:config [-- --services N --source directory|kube --changes K]   (after `npx tsc -p .`)
 *
 * The cluster: N Services (default 1000) in 10 namespaces, 10 Pods each (10,000), and per
 * Service one EndpointSlice of its 10 pods (the Kubernetes source) or its pods' labels (the
 * directory source, which resolves endpoints from selectors), one HTTPRoute per 10
 * Services, one TrafficPolicy and one AuthorizationPolicy per namespace. Each source runs
 * in its own child process, so RSS is that source's alone:
 *
 * - directory: one JSON file per Service (the Service, its pods), per route and per
 *   policy, read by a DirectorySource (debounce 0 here; its default quiet time of 100 ms
 *   comes on top, and is printed);
 * - kube: the objects in the fake API server (src/kube/testing, HTTP on 127.0.0.1), read
 *   by a KubeSource with its default debounce, listing and watching every kind.
 *
 * Figures: time from start to the first configuration in place (source loaded, snapshot,
 * proxy configuration), RSS then (after a GC when run with --expose-gc, as the script
 * does), and for each kind of change (add, modify, remove of a Service, an EndpointSlice,
 * a Pod, an HTTPRoute) the time from the change (file written, object written to the API
 * server) to the new proxy configuration in place: median and max over K changes (5),
 * each after 150 ms without changes (a change that follows another within the KubeSource's
 * debounce of 50 ms waits for that much quiet on top).
 */
import { fork } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConfigSource, SourceResult } from '../config/config-source';
import { DirectorySource } from '../config/directory-source';
import { MeshSnapshot } from '../config/snapshot';
import { coreKinds } from '../kinds/registry';
import { KubeSource } from '../kube/kube-source';
import { FakeApiServer, kubeConfigFor, type KubeObject } from '../kube/testing/fake-apiserver';
import { endpointSlice, httpRoute, namespace, pod, service, trafficPolicy } from '../kube/testing/cluster-objects';
import { ProxyConfigStore, type ProxyConfig } from '../proxy/proxy-config';
import { sourceState } from './source-state';

const NAMESPACES = 10;
const PODS_PER_SERVICE = 10;
const CHANGE_DEADLINE_MS = 60_000;
/** Pause before each change, longer than the sources' coalescing windows. */
const QUIET_MS = 150;

interface Args {
  services: number;
  source: 'directory' | 'kube' | 'both';
  changes: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { services: 1000, source: 'both', changes: 5 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (flag === '--services' && value) args.services = Number(value);
    else if (flag === '--changes' && value) args.changes = Number(value);
    else if (flag === '--source' && (value === 'directory' || value === 'kube' || value === 'both')) args.source = value;
    else throw new Error(`unknown argument ${flag} (use --services N, --changes K, --source directory|kube|both)`);
    i++;
  }
  return args;
}

/** The cluster's objects, generated: Service i lives in namespace ns-(i mod 10). */
class Cluster {
  readonly namespaces: KubeObject[] = [];
  constructor(readonly services: number) {
    for (let n = 0; n < NAMESPACES; n++) this.namespaces.push(namespace(`ns-${n}`, { 'nodemesh.dev/mode': 'ambient' }));
  }
  ns(i: number): string {
    return `ns-${i % NAMESPACES}`;
  }
  /** With `second`, a second port (81, the "modify"). */
  service(i: number, second = false): KubeObject {
    const ports = [{ name: 'http', port: 80, targetPort: 8080 }, ...(second ? [{ name: 'admin', port: 81, targetPort: 8081 }] : [])];
    return service(`svc-${i}`, { namespace: this.ns(i), clusterIP: clusterIP(i), selector: { app: `app-${i}` }, ports });
  }
  pod(i: number, j: number, extra: Record<string, string> = {}): KubeObject {
    return pod(`svc-${i}-pod-${j}`, { namespace: this.ns(i), ip: podIP(i, j), labels: { app: `app-${i}`, ...extra }, node: `node-${j % 4}` });
  }
  pods(i: number): KubeObject[] {
    return Array.from({ length: PODS_PER_SERVICE }, (_, j) => this.pod(i, j));
  }
  slice(i: number, ready = PODS_PER_SERVICE): KubeObject {
    return endpointSlice(`svc-${i}-abcde`, `svc-${i}`, {
      namespace: this.ns(i),
      endpoints: Array.from({ length: PODS_PER_SERVICE }, (_, j) => ({ ip: podIP(i, j), ready: j < ready, node: `node-${j % 4}`, pod: `svc-${i}-pod-${j}` })),
    });
  }
  route(r: number, target = r * 10): KubeObject {
    const object = httpRoute(`route-${r}`, `svc-${target}`, this.ns(target));
    const spec = object.spec as { rules: Array<Record<string, unknown>> };
    spec.rules = [{ matches: [{ path: { type: 'PathPrefix', value: `/r${r}` } }], backendRefs: [{ name: `svc-${target}`, port: 80 }] }, { backendRefs: [{ name: `svc-${target}`, port: 80 }] }];
    return object;
  }
  routes(): number {
    return Math.floor(this.services / 10);
  }
  policies(): KubeObject[] {
    const out: KubeObject[] = [];
    for (let n = 0; n < NAMESPACES; n++) {
      out.push(trafficPolicy(`policy-${n}`, { targetRef: { group: '', kind: 'Service', name: `svc-${n}` }, loadBalancer: { type: 'RoundRobin' } }, `ns-${n}`));
      out.push({
        apiVersion: 'security.istio.io/v1',
        kind: 'AuthorizationPolicy',
        metadata: { name: `authz-${n}`, namespace: `ns-${n}` },
        spec: { selector: { matchLabels: { app: `app-${n}` } }, action: 'ALLOW', rules: [{ from: [{ source: { principals: [`cluster.local/ns/ns-${n}/sa/client`] } }] }] },
      });
    }
    return out;
  }
}

function clusterIP(i: number): string {
  return `10.96.${Math.floor(i / 250)}.${(i % 250) + 1}`;
}

function podIP(i: number, j: number): string {
  const n = i * PODS_PER_SERVICE + j;
  return `10.${64 + Math.floor(n / 65536)}.${Math.floor(n / 256) % 256}.${n % 256}`;
}

/**
 * What the runtime does with a source's result (src/runtime/runtime.ts#apply): a snapshot,
 * then the proxy configuration compiled from it.
 */
class Applier {
  private version = 0;
  readonly store = new ProxyConfigStore(MeshSnapshot.empty(), { meshRootNamespace: 'ns-0' });
  private waiter: { test: (c: ProxyConfig) => boolean; resolve: () => void } | undefined;

  apply(result: SourceResult): void {
    this.version++;
    const snapshot = MeshSnapshot.from(result, this.version, this.store.current.snapshot);
    const config = this.store.update(snapshot, result.rejected);
    if (this.waiter?.test(config)) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve();
    }
  }

  /** Resolves once a configuration passing `test` is in place. */
  until(what: string, test: (c: ProxyConfig) => boolean): Promise<void> {
    if (test(this.store.current)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${what}: not applied within ${CHANGE_DEADLINE_MS} ms`)), CHANGE_DEADLINE_MS);
      this.waiter = {
        test,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
    });
  }
}

/** One kind of change: `make(k)` performs the k-th one, `done` says the configuration has it. */
interface Change {
  name: string;
  make: (k: number) => Promise<void>;
  done: (k: number, c: ProxyConfig) => boolean;
}

/** The same changes, expressed for either source by `put` (create or replace) and `remove`. */
function changes(cluster: Cluster, put: (key: string, objects: KubeObject[]) => Promise<void>, remove: (key: string, objects: KubeObject[]) => Promise<void>, slices: boolean): Change[] {
  const N = cluster.services;
  const svcKey = (i: number) => `${cluster.ns(i)}/svc-${i}`;
  const eps = (c: ProxyConfig, i: number) => {
    const svc = c.snapshot.service(svcKey(i));
    return svc ? c.snapshot.readyEndpoints(svc, svc.ports[0]!, 4).length : -1;
  };
  // Changed Services: 1..K (not 0..9, whose policies name them); added ones N, N+1, ...
  const out: Change[] = [
    { name: 'Service add', make: (k) => put(`service-${N + k}`, [cluster.service(N + k)]), done: (k, c) => c.snapshot.services.has(svcKey(N + k)) },
    { name: 'Service modify', make: (k) => put(`service-${10 + k}`, [cluster.service(10 + k, true), ...(slices ? [] : cluster.pods(10 + k))]), done: (k, c) => c.snapshot.service(svcKey(10 + k))?.ports.length === 2 },
    { name: 'Service remove', make: (k) => remove(`service-${N + k}`, [cluster.service(N + k)]), done: (k, c) => !c.snapshot.services.has(svcKey(N + k)) },
  ];
  if (slices) {
    out.push(
      { name: 'EndpointSlice add', make: (k) => put(`slice-${N + k}`, [cluster.slice(N + k)]), done: (k, c) => c.snapshot.endpointSlices.has(svcKey(N + k)) },
      { name: 'EndpointSlice modify', make: (k) => put(`slice-${20 + k}`, [cluster.slice(20 + k, 5)]), done: (k, c) => eps(c, 20 + k) === 5 },
      { name: 'EndpointSlice remove', make: (k) => remove(`slice-${N + k}`, [cluster.slice(N + k)]), done: (k, c) => !c.snapshot.endpointSlices.has(svcKey(N + k)) },
    );
  }
  const podKey = (i: number, j: number) => `${cluster.ns(i)}/svc-${i}-pod-${j}`;
  out.push(
    { name: 'Pod add', make: (k) => put(`pod-${30 + k}-extra`, [cluster.pod(30 + k, PODS_PER_SERVICE)]), done: (k, c) => c.snapshot.pods.has(podKey(30 + k, PODS_PER_SERVICE)) },
    { name: 'Pod modify', make: (k) => put(`pod-${40 + k}-0`, [cluster.pod(40 + k, 0, { version: 'v2' })]), done: (k, c) => c.snapshot.pods.get(podKey(40 + k, 0))?.labels.version === 'v2' },
    { name: 'Pod remove', make: (k) => remove(`pod-${30 + k}-extra`, [cluster.pod(30 + k, PODS_PER_SERVICE)]), done: (k, c) => !c.snapshot.pods.has(podKey(30 + k, PODS_PER_SERVICE)) },
    { name: 'HTTPRoute add', make: (k) => put(`route-${cluster.routes() + k}`, [cluster.route(cluster.routes() + k, 50 + k)]), done: (k, c) => c.routeStatuses.some((s) => s.name === `route-${cluster.routes() + k}`) },
    { name: 'HTTPRoute modify', make: (k) => put(`route-${k}`, [cluster.route(k, 60 + k)]), done: (k, c) => c.routeStatuses.some((s) => s.name === `route-${k}` && s.parents.some((p) => p.parentRef.name === `svc-${60 + k}`)) },
    { name: 'HTTPRoute remove', make: (k) => remove(`route-${cluster.routes() + k}`, [cluster.route(cluster.routes() + k, 50 + k)]), done: (k, c) => !c.routeStatuses.some((s) => s.name === `route-${cluster.routes() + k}`) },
  );
  return out;
}

interface Figures {
  source: string;
  services: number;
  pods: number;
  endpoints: number;
  readyMs: number;
  rssMiB: number;
  heapMiB: number;
  changes: Array<{ name: string; medianMs: number; maxMs: number; count: number }>;
}

async function measureChanges(applier: Applier, list: Change[], count: number): Promise<Figures['changes']> {
  const out: Figures['changes'] = [];
  for (const change of list) {
    const times: number[] = [];
    for (let k = 0; k < count; k++) {
      // Each change alone, after a quiet time (as most changes come): a change right after
      // another one waits for the KubeSource's coalescing (debounceMs of quiet) on top.
      await sleep(QUIET_MS);
      const start = process.hrtime.bigint();
      const applied = applier.until(change.name, (c) => change.done(k, c));
      await change.make(k);
      await applied;
      times.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
    times.sort((a, b) => a - b);
    out.push({ name: change.name, medianMs: times[Math.floor(times.length / 2)]!, maxMs: times[times.length - 1]!, count });
  }
  return out;
}

function memory(): { rssMiB: number; heapMiB: number } {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return { rssMiB: m.rss / 2 ** 20, heapMiB: m.heapUsed / 2 ** 20 };
}

async function runDirectory(args: Args): Promise<Figures> {
  const cluster = new Cluster(args.services);
  const dir = await mkdtemp(join(tmpdir(), 'nm-config-bench-'));
  try {
    const file = (key: string) => join(dir, `${key}.json`);
    const write = (key: string, objects: KubeObject[]) => writeFile(file(key), JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }));
    await write('namespaces', cluster.namespaces);
    for (let i = 0; i < args.services; i++) await write(`service-${i}`, [cluster.service(i), ...cluster.pods(i)]);
    for (let r = 0; r < cluster.routes(); r++) await write(`route-${r}`, [cluster.route(r)]);
    await write('policies', cluster.policies());
    // Pods changed one at a time get a file of their own (an added pod, a modified one, which leaves its Service's file).
    for (let k = 0; k < args.changes; k++) {
      const i = 40 + k;
      await write(`service-${i}`, [cluster.service(i), ...cluster.pods(i).slice(1)]);
      await write(`pod-${i}-0`, [cluster.pod(i, 0)]);
    }
    const source = new DirectorySource(dir, { debounceMs: 0, kinds: coreKinds() });
    const figures = await measure('directory', args, cluster, source, write, (key) => unlink(file(key)), false);
    source.close();
    return figures;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function runKube(args: Args): Promise<Figures> {
  const cluster = new Cluster(args.services);
  const server = await FakeApiServer.start();
  try {
    for (const ns of cluster.namespaces) server.create(ns);
    for (let i = 0; i < args.services; i++) {
      server.create(cluster.service(i));
      for (const p of cluster.pods(i)) server.create(p);
      server.create(cluster.slice(i));
    }
    for (let r = 0; r < cluster.routes(); r++) server.create(cluster.route(r));
    for (const p of cluster.policies()) server.create(p);
    const source = new KubeSource({ kubeConfig: kubeConfigFor(server), nodeName: undefined, pageSize: 500 });
    const put = async (_key: string, objects: KubeObject[]) => {
      for (const o of objects) server.upsert(o);
    };
    const remove = async (_key: string, objects: KubeObject[]) => {
      for (const o of objects) server.delete(o);
    };
    const figures = await measure('kube', args, cluster, source, put, remove, true);
    source.close();
    return figures;
  } finally {
    await server.close();
  }
}

async function measure(name: string, args: Args, cluster: Cluster, source: ConfigSource, put: (key: string, objects: KubeObject[]) => Promise<void>, remove: (key: string, objects: KubeObject[]) => Promise<void>, slices: boolean): Promise<Figures> {
  const applier = new Applier();
  const start = process.hrtime.bigint();
  applier.apply(await source.load());
  const readyMs = Number(process.hrtime.bigint() - start) / 1e6;
  const c = applier.store.current;
  const expected = args.services * PODS_PER_SERVICE;
  if (c.snapshot.pods.size !== expected) throw new Error(`${name}: ${c.snapshot.pods.size} pods in the first snapshot, expected ${expected}`);
  let endpoints = 0;
  for (const svc of c.snapshot.services.values()) endpoints += c.snapshot.readyEndpoints(svc, svc.ports[0]!, 4).length;
  const mem = memory();
  source.watch((result) => applier.apply(result));
  const changeFigures = await measureChanges(applier, changes(cluster, put, remove, slices), args.changes);
  return { source: name, services: c.snapshot.services.size, pods: c.snapshot.pods.size, endpoints, readyMs, ...mem, changes: changeFigures };
}

function print(f: Figures): void {
  const n = (x: number) => x.toFixed(1);
  console.log(`\n${f.source}: ${f.services} Services, ${f.pods} Pods, ${f.endpoints} ready endpoints`);
  console.log(`  ready (first snapshot + proxy configuration): ${n(f.readyMs)} ms; RSS ${n(f.rssMiB)} MiB, heap used ${n(f.heapMiB)} MiB (after GC)`);
  console.log(`  change                  median ms   max ms   (n)`);
  for (const c of f.changes) console.log(`  ${c.name.padEnd(22)} ${n(c.medianMs).padStart(9)} ${n(c.maxMs).padStart(8)}   (${c.count})`);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.source !== 'both') {
    const figures = args.source === 'directory' ? await runDirectory(args) : await runKube(args);
    if (process.send) process.send(figures);
    else print(figures);
    return;
  }
  console.log(`config-scale-bench at ${sourceState()}, node ${process.version}`);
  console.log('directory: DirectorySource debounce 0 here (default 100 ms quiet time comes on top); kube: KubeSource defaults (a change after 50 ms of quiet goes at once) against the fake API server; each change after 150 ms without changes');
  for (const source of ['directory', 'kube'] as const) {
    const child = fork(__filename, ['--services', String(args.services), '--changes', String(args.changes), '--source', source], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const figures = await new Promise<Figures>((resolve, reject) => {
      let got: Figures | undefined;
      child.on('message', (m) => (got = m as Figures));
      child.on('exit', (code) => (got ? resolve(got) : reject(new Error(`the ${source} run exited with ${code} and no figures`))));
    });
    print(figures);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
