import assert from 'node:assert/strict';
import test from 'node:test';
import type { K8sObject, RawObject } from '../config/k8s-yaml';
import { ObjectConverter, convertObjects } from '../config/objects';
import { MeshSnapshot, type SnapshotInput } from '../config/snapshot';
import { KindParser, coreKinds, parseInSource } from '../kinds/registry';
import { serviceKey } from '../mesh/model';
import { ProxyConfigStore, type ProxyConfig } from './proxy-config';

/**
 * Incremental updates give the configuration a full rebuild gives: a seeded random
 * sequence of adds, updates and deletes of Namespaces, Pods, Services, EndpointSlices,
 * HTTPRoutes and policies, applied to one long-lived chain (ObjectConverter, KindParser,
 * snapshots built from the previous one, one ProxyConfigStore, endpoint caches filled
 * between steps) and, after each step, compared with everything built from scratch from
 * the same objects. NODEMESH_TEST_SEED=<n> replays a failing sequence.
 */

const STEPS = 150;
const NAMESPACES = ['ns-a', 'ns-b'];
const APPS = ['a', 'b', 'c'];
const MODES = ['ambient', 'sidecar', 'off', undefined];
const ROOT = 'ns-a';

/** mulberry32: small, seeded, good enough to pick changes. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Generator {
  constructor(private readonly rnd: () => number) {}
  pick<T>(list: readonly T[]): T {
    return list[Math.floor(this.rnd() * list.length)]!;
  }
  int(n: number): number {
    return Math.floor(this.rnd() * n);
  }
  chance(p: number): boolean {
    return this.rnd() < p;
  }
  ns(): string {
    return this.pick(NAMESPACES);
  }
  /** A small pool, so pods share addresses at times (the index must pick the same holder). */
  podIP(): string {
    return `10.1.0.${this.int(12)}`;
  }

  object(kind: string, ns: string, name: string): K8sObject {
    switch (kind) {
      case 'Namespace': {
        const mode = this.pick(MODES);
        return { apiVersion: 'v1', kind, metadata: { name: ns, labels: mode ? { 'nodemesh.dev/mode': mode } : {} } };
      }
      case 'Pod': {
        const mode = this.pick(MODES);
        const ip = this.podIP();
        return {
          apiVersion: 'v1',
          kind,
          metadata: { name, namespace: ns, uid: `uid-${name}-${this.int(3)}`, labels: { app: this.pick(APPS) }, annotations: mode ? { 'nodemesh.dev/mode': mode } : {} },
          spec: { nodeName: this.pick(['node-a', 'node-b']), hostNetwork: this.chance(0.1), serviceAccountName: this.pick(['default', 'web']), containers: [{ name: 'app', ports: [{ name: 'http', containerPort: this.pick([8080, 9090]) }] }] },
          status: { phase: 'Running', podIP: ip, podIPs: [{ ip }, ...(this.chance(0.3) ? [{ ip: `fd00::${this.int(12)}` }] : [])], conditions: [{ type: 'Ready', status: this.chance(0.8) ? 'True' : 'False' }] },
        };
      }
      case 'Service': {
        const ports = [{ name: 'http', port: 80, targetPort: this.pick<number | string>([8080, 'http']), protocol: 'TCP' }];
        if (this.chance(0.4)) ports.push({ name: 'grpc', port: 90, targetPort: 9090, protocol: 'TCP' });
        const ip = `10.96.0.${this.int(6)}`;
        const spec: Record<string, unknown> = { clusterIP: ip, clusterIPs: [ip], ports };
        if (this.chance(0.85)) spec.selector = { app: this.pick(APPS) };
        return { apiVersion: 'v1', kind, metadata: { name, namespace: ns }, spec };
      }
      case 'EndpointSlice': {
        const endpoints = Array.from({ length: this.int(4) }, () => ({
          addresses: [this.podIP()],
          conditions: { ready: this.chance(0.8), serving: true, terminating: this.chance(0.1) },
          nodeName: 'node-a',
        }));
        return {
          apiVersion: 'discovery.k8s.io/v1',
          kind,
          metadata: { name, namespace: ns, labels: { 'kubernetes.io/service-name': `svc-${this.int(4)}` } },
          addressType: 'IPv4',
          ports: [{ name: this.pick(['http', 'grpc']), port: this.pick([8080, 9090]), protocol: 'TCP' }],
          endpoints,
        };
      }
      case 'HTTPRoute': {
        const target = `svc-${this.int(5)}`; // svc-4 never exists: an unresolved backend
        const rules: Array<Record<string, unknown>> = [{ matches: [{ path: { type: 'PathPrefix', value: `/${this.int(3)}` } }], backendRefs: [{ name: target, port: this.pick([80, 90, 91]) }] }];
        if (this.chance(0.1)) rules.push({ filters: [{ type: 'NoSuchFilter' }] }); // rejected
        return { apiVersion: 'gateway.networking.k8s.io/v1', kind, metadata: { name, namespace: ns }, spec: { parentRefs: [{ group: '', kind: 'Service', name: `svc-${this.int(5)}` }], rules } };
      }
      case 'TrafficPolicy':
        return {
          apiVersion: 'nodemesh.dev/v1alpha1',
          kind,
          metadata: { name, namespace: ns },
          spec: { targetRef: { group: '', kind: 'Service', name: `svc-${this.int(4)}` }, loadBalancer: { type: this.pick(['RoundRobin', 'LeastRequest', 'Bogus']) } },
        };
      case 'AuthorizationPolicy':
        return {
          apiVersion: 'security.istio.io/v1',
          kind,
          metadata: { name, namespace: this.pick([ns, ROOT]) },
          spec: { selector: { matchLabels: { app: this.pick(APPS) } }, action: this.pick(['ALLOW', 'DENY']), rules: [{ to: [{ operation: { paths: [`/${this.int(3)}`] } }] }] },
        };
      case 'PeerAuthentication':
        return { apiVersion: 'security.istio.io/v1', kind, metadata: { name, namespace: ns }, spec: { mtls: { mode: this.pick(['STRICT', 'PERMISSIVE', 'DISABLE', 'NONSENSE']) } } };
      default:
        throw new Error(kind);
    }
  }
}

const KIND_NAMES: Record<string, string[]> = {
  Namespace: NAMESPACES,
  Pod: Array.from({ length: 10 }, (_, i) => `pod-${i}`),
  Service: Array.from({ length: 4 }, (_, i) => `svc-${i}`),
  EndpointSlice: Array.from({ length: 5 }, (_, i) => `slice-${i}`),
  HTTPRoute: Array.from({ length: 4 }, (_, i) => `route-${i}`),
  TrafficPolicy: ['tp-0', 'tp-1'],
  AuthorizationPolicy: ['authz-0', 'authz-1'],
  PeerAuthentication: ['pa-0'],
};

/** What the proxy uses of a configuration, in a comparable form (maps sorted by key). */
function view(c: ProxyConfig): unknown {
  const s = c.snapshot;
  const sorted = <V>(m: ReadonlyMap<string, V>) => [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const endpoints: Record<string, unknown> = {};
  for (const svc of s.services.values()) {
    for (const port of svc.ports) {
      endpoints[`${serviceKey(svc)}:${port.port}`] = {
        all: s.endpointsFor(svc, port, { includeNotReady: true }),
        ready4: s.readyEndpoints(svc, port, 4),
        ready6: s.readyEndpoints(svc, port, 6),
      };
    }
  }
  const ips = [...Array.from({ length: 12 }, (_, i) => `10.1.0.${i}`), ...Array.from({ length: 12 }, (_, i) => `fd00::${i}`)];
  const clusterIPs = Array.from({ length: 6 }, (_, i) => `10.96.0.${i}`);
  // Map order is not configuration: pods by key.
  const pods = sorted(s.pods).map(([, p]) => p);
  return {
    namespaces: sorted(s.namespaces),
    pods: sorted(s.pods),
    services: sorted(s.services),
    slices: sorted(s.endpointSlices),
    others: s.others,
    endpoints,
    podByIP: ips.map((ip) => s.podByIP(ip)?.name),
    serviceByClusterIP: clusterIPs.map((ip) => s.serviceByClusterIP(ip, 80)?.service.name),
    modes: pods.map((p) => s.modeDecision(p)),
    routes: c.routes.describe(),
    routeStatuses: c.routeStatuses,
    peerAuthentication: pods.map((p) => [c.peerAuthentication.modeFor(p, 8080), c.peerAuthentication.modeFor(p, 9090)]),
    authorization: c.authorization,
    rejected: c.rejected,
    warnings: c.warnings,
    workloads: pods.map((p) => c.workload(p)),
  };
}

/** The long-lived chain, as a source and the runtime keep it. */
class Chain {
  private readonly converter = new ObjectConverter(coreKinds());
  private readonly parser = new KindParser();
  readonly store = new ProxyConfigStore(MeshSnapshot.empty(), { meshRootNamespace: ROOT });
  private version = 0;
  constructor(private readonly slicesOnly: boolean) {}

  apply(raws: RawObject[]): ProxyConfig {
    const converted = this.converter.convert(raws);
    const input = inputOf(converted, this.slicesOnly, this.slicesOnly ? this.parser.parse(converted.others) : undefined);
    this.version++;
    return this.store.update(MeshSnapshot.from(input, this.version, this.store.current.snapshot), input.rejected);
  }
}

function inputOf(converted: ReturnType<typeof convertObjects>, slicesOnly: boolean, parse: ReturnType<typeof parseInSource> | undefined): SnapshotInput & { rejected: ReturnType<typeof convertObjects>['rejected'] } {
  const rejectedFiles = new Set(parse?.rejected.map((r) => r.file) ?? []);
  return {
    ...converted,
    endpointsFromSlicesOnly: slicesOnly,
    others: converted.others.filter((o) => !rejectedFiles.has(o.file)),
    rejected: [...converted.rejected, ...(parse?.rejected ?? [])],
    ...(parse ? { parsed: parse.parsed } : {}),
  };
}

function fromScratch(raws: RawObject[], slicesOnly: boolean): ProxyConfig {
  const converted = convertObjects(raws, coreKinds());
  const input = inputOf(converted, slicesOnly, slicesOnly ? parseInSource(converted.others) : undefined);
  return new ProxyConfigStore(MeshSnapshot.from(input, 1), { meshRootNamespace: ROOT }).update(MeshSnapshot.from(input, 1), input.rejected);
}

for (const slicesOnly of [false, true]) {
  test(`random changes: the incrementally kept configuration equals a full rebuild (${slicesOnly ? 'endpoints from slices only, source-parsed kinds' : 'directory source: pod selectors'})`, () => {
    const seed = process.env.NODEMESH_TEST_SEED ? Number(process.env.NODEMESH_TEST_SEED) : Math.floor(Math.random() * 2 ** 31);
    const g = new Generator(random(seed));
    const world = new Map<string, RawObject>();
    const chain = new Chain(slicesOnly);
    let lastAuthz = '[]'; // the empty snapshot's
    let lastGeneration = chain.store.current.authorizationGeneration;
    for (let step = 0; step < STEPS; step++) {
      const kind = g.pick(Object.keys(KIND_NAMES));
      const name = g.pick(KIND_NAMES[kind]!);
      const ns = kind === 'Namespace' ? name : g.ns();
      const key = `${kind} ${ns}/${name}`;
      const op = world.has(key) ? g.pick(['update', 'update', 'delete', 'touch']) : 'add';
      // One file per object, as the Kubernetes source names them by API path.
      if (op === 'delete') world.delete(key);
      else if (op === 'touch') world.set(key, { ...world.get(key)!, object: structuredClone(world.get(key)!.object) }); // same content, new objects (a re-read file)
      else world.set(key, { object: g.object(kind, ns, name), file: `/objects/${key}`, document: 0 });
      // The directory source lists files by name (additions land anywhere), the Kubernetes one in store order (at the end).
      const raws = slicesOnly ? [...world.values()] : [...world.values()].sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
      const incremental = chain.apply(raws);
      const full = fromScratch(raws, slicesOnly);
      try {
        assert.deepStrictEqual(view(incremental), view(full));
        // The generation moves exactly when the authorization objects change.
        const authz = JSON.stringify(incremental.snapshot.others.filter((o) => o.kind === 'AuthorizationPolicy').map((o) => o.object));
        assert.equal(incremental.authorizationGeneration !== lastGeneration, authz !== lastAuthz, 'authorizationGeneration moves with the authorization objects');
        lastAuthz = authz;
        lastGeneration = incremental.authorizationGeneration;
      } catch (err) {
        throw new Error(`seed ${seed} (NODEMESH_TEST_SEED=${seed} replays it), step ${step} (${op} ${key}): ${(err as Error).message}`, { cause: err });
      }
    }
  });
}

test('an unchanged object keeps its frozen copy, its endpoints and its compiled route in the next snapshot', () => {
  const g = new Generator(random(7));
  const svc = { object: g.object('Service', 'ns-a', 'svc-0'), file: 'svc', document: 0 };
  const other = { object: g.object('Service', 'ns-a', 'svc-1'), file: 'svc1', document: 0 };
  const chain = new Chain(false);
  const first = chain.apply([svc, other]);
  const ready = first.snapshot.readyEndpoints(first.snapshot.service('ns-a/svc-0')!, first.snapshot.service('ns-a/svc-0')!.ports[0]!, 4);
  const second = chain.apply([svc, { ...other, object: g.object('Service', 'ns-a', 'svc-1') }]);
  assert.equal(second.snapshot.service('ns-a/svc-0'), first.snapshot.service('ns-a/svc-0'), 'the same frozen object');
  assert.equal(second.snapshot.readyEndpoints(second.snapshot.service('ns-a/svc-0')!, second.snapshot.service('ns-a/svc-0')!.ports[0]!, 4), ready, 'its endpoints are not computed again');
  assert.equal(second.snapshot.pods, first.snapshot.pods, 'no pod changed: the map is shared');
  assert.notEqual(first.snapshot, second.snapshot);
  assert.ok(Object.isFrozen(second.snapshot));
});
