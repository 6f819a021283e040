/**
 * The simulator topologies the benchmarks write, from one set of YAML writers.
 *
 * `nodemesh bench` builds two nodes, and for each group of modes
 * a client and two servers, so that every mode keeps its own pods and no mode's set-up
 * lingers in another's path:
 *
 *   group     pods (node1: c-G, s1-G; node2: s2-G)   annotation
 *   direct    no mesh                                 nodemesh.dev/mode: "off"
 *   sidecar   nodemesh sidecars (started by sim up)   nodemesh.dev/mode: sidecar
 *   envoy     Envoy sidecars (started by the bench)   nodemesh.dev/mode: "off"
 *   ambient   the node agents (restarted per capture) nodemesh.dev/mode: ambient while an
 *                                                    ambient mode runs, "off" otherwise
 *
 * Services G-local -> s1-G (same node as the client) and G-remote -> s2-G (across
 * nodes), port 80 -> 8080, where the L7 test app answers POST /echo.
 *
 * `npm run bench:proxy` (./proxy-bench.ts) builds one client c1 and servers s1 (node1) and
 * s2 (node2) behind Services s-local and s-remote, the same shape with one group.
 */
import type { BenchMode, Placement } from './report-schema';

export const BENCH_NAMESPACE = 'bench';
export const GROUPS = ['direct', 'sidecar', 'envoy', 'ambient'] as const;
export type Group = (typeof GROUPS)[number];

export function groupOf(mode: BenchMode): Group {
  if (mode === 'direct' || mode === 'sidecar') return mode;
  if (mode === 'envoy-sidecar') return 'envoy';
  return 'ambient';
}

const INDEX: Record<Group, number> = { direct: 1, sidecar: 2, envoy: 3, ambient: 4 };

export interface GroupLayout {
  client: string;
  clientIP: string;
  servers: Record<Placement, { pod: string; ip: string; node: string; service: string; clusterIP: string; url: string }>;
}

export function layout(group: Group): GroupLayout {
  const i = INDEX[group];
  const svc = (placement: Placement) => `${group}-${placement === 'same-node' ? 'local' : 'remote'}`;
  const clusterIP = (placement: Placement) => `10.96.0.${i * 10 + (placement === 'same-node' ? 0 : 1)}`;
  return {
    client: `${BENCH_NAMESPACE}/c-${group}`,
    clientIP: `10.244.1.${i * 10}`,
    servers: {
      'same-node': { pod: `${BENCH_NAMESPACE}/s1-${group}`, ip: `10.244.1.${i * 10 + 1}`, node: 'node1', service: svc('same-node'), clusterIP: clusterIP('same-node'), url: `http://${clusterIP('same-node')}/echo` },
      'cross-node': { pod: `${BENCH_NAMESPACE}/s2-${group}`, ip: `10.244.2.${i * 10 + 1}`, node: 'node2', service: svc('cross-node'), clusterIP: clusterIP('cross-node'), url: `http://${clusterIP('cross-node')}/echo` },
    },
  };
}

function annotation(group: Group, ambientOn: boolean): string {
  if (group === 'sidecar') return 'sidecar';
  if (group === 'ambient' && ambientOn) return 'ambient';
  return '"off"';
}

interface PodSpec {
  name: string;
  node: string;
  ip: string;
  image: string;
  /** The nodemesh.dev/mode annotation's YAML value; none when undefined. */
  mode?: string;
  /** The `app` label the Services select on; the pod's name by default. */
  app?: string;
  port?: number;
}

function pod({ name, node, ip, image, mode, app = name, port }: PodSpec): string {
  return `---
apiVersion: v1
kind: Pod
metadata:
  name: ${name}
  namespace: ${BENCH_NAMESPACE}
  labels: { app: ${app} }
${mode === undefined ? '' : `  annotations: { nodemesh.dev/mode: ${mode} }\n`}spec:
  nodeName: ${node}
  containers: [{ name: app, image: ${image}${port ? `, ports: [{ name: http, containerPort: ${port} }]` : ''} }]
status:
  podIP: ${ip}
  podIPs: [{ ip: ${ip} }]
`;
}

function service(name: string, selector: string, clusterIP: string): string {
  return `---
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${BENCH_NAMESPACE} }
spec:
  selector: { app: ${selector} }
  clusterIP: ${clusterIP}
  clusterIPs: [${clusterIP}]
  ports: [{ name: http, port: 80, targetPort: 8080 }]
`;
}

function namespace(title: string): string {
  return `# ${title} (written by src/bench/topology.ts)
apiVersion: v1
kind: Namespace
metadata: { name: ${BENCH_NAMESPACE} }
`;
}

const nameOf = (key: string) => key.split('/')[1]!;

/** The topology YAML for these groups; `ambientOn` annotates the ambient group's pods ambient. */
export function benchTopology(groups: readonly Group[], ambientOn: boolean): string {
  let out = namespace('nodemesh bench topology');
  for (const g of groups) {
    const l = layout(g);
    const mode = annotation(g, ambientOn);
    out += pod({ name: nameOf(l.client), node: 'node1', ip: l.clientIP, mode, image: 'fortio/fortio' });
    for (const placement of ['same-node', 'cross-node'] as const) {
      const s = l.servers[placement];
      out += pod({ name: nameOf(s.pod), node: s.node, ip: s.ip, mode, image: 'nodemesh/l7-app', port: 8080 });
      out += service(s.service, nameOf(s.pod), s.clusterIP);
    }
  }
  return out;
}

/** bench:proxy's placements: the client's server on its own node, and on the other. */
export const PROXY_BENCH_LAYOUT = {
  client: { pod: `${BENCH_NAMESPACE}/c1`, ip: '10.244.1.21' },
  servers: [
    { name: 'same', pod: `${BENCH_NAMESPACE}/s1`, ip: '10.244.1.22', node: 'node1', service: 's-local', clusterIP: '10.96.0.20', url: 'http://10.96.0.20/echo' },
    { name: 'cross', pod: `${BENCH_NAMESPACE}/s2`, ip: '10.244.2.21', node: 'node2', service: 's-remote', clusterIP: '10.96.0.21', url: 'http://10.96.0.21/echo' },
  ],
} as const;

/**
 * bench:proxy's topology; `clientMode` annotates the client (ambient: the node1 agent
 * captures it; off: kube-proxy's DNAT only). The servers are not enrolled, so a proxy run
 * has one proxy hop; with `serverSameNodeAmbient` (--authz-rules) the same-node one is.
 */
export function proxyBenchTopology(clientMode: 'ambient' | 'off', options: { serverSameNodeAmbient?: boolean } = {}): string {
  const l = PROXY_BENCH_LAYOUT;
  let out = namespace('bench:proxy topology');
  out += pod({ name: nameOf(l.client.pod), node: 'node1', ip: l.client.ip, mode: clientMode === 'off' ? '"off"' : clientMode, app: 'c', image: 'nodemesh/load-generator' });
  // --authz-rules: the same-node server is enrolled too, so that the destination side
  // (the in-process hand-over) authorizes every request.
  for (const s of l.servers) out += pod({ name: nameOf(s.pod), node: s.node, ip: s.ip, app: s.service, image: 'nodemesh/l7-app', port: 8080, ...(options.serverSameNodeAmbient && s.name === 'same' ? { mode: 'ambient' } : {}) });
  for (const s of l.servers) out += service(s.service, s.service, s.clusterIP);
  return out;
}

export const TOPOLOGY_SUMMARY = 'simulator, two nodes; per mode a client pod on node1, a server on node1 (same node) and one on node2 (across nodes), reached through a Service (ClusterIP :80 -> pod :8080)';
