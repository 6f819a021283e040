/**
 * The simulator topology `nodemesh bench` builds: two nodes, and for each group of modes
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

function pod(name: string, node: string, ip: string, mode: string, image: string, port?: number): string {
  return `---
apiVersion: v1
kind: Pod
metadata:
  name: ${name}
  namespace: ${BENCH_NAMESPACE}
  labels: { app: ${name} }
  annotations: { nodemesh.dev/mode: ${mode} }
spec:
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

/** The topology YAML for these groups; `ambientOn` annotates the ambient group's pods ambient. */
export function benchTopology(groups: readonly Group[], ambientOn: boolean): string {
  let out = `# nodemesh bench topology (written by src/bench/topology.ts)
apiVersion: v1
kind: Namespace
metadata: { name: ${BENCH_NAMESPACE} }
`;
  for (const g of groups) {
    const l = layout(g);
    const mode = annotation(g, ambientOn);
    out += pod(l.client.split('/')[1]!, 'node1', l.clientIP, mode, 'fortio/fortio');
    for (const placement of ['same-node', 'cross-node'] as const) {
      const s = l.servers[placement];
      out += pod(s.pod.split('/')[1]!, s.node, s.ip, mode, 'nodemesh/l7-app', 8080);
      out += service(s.service, s.pod.split('/')[1]!, s.clusterIP);
    }
  }
  return out;
}

export const TOPOLOGY_SUMMARY = 'simulator, two nodes; per mode a client pod on node1, a server on node1 (same node) and one on node2 (across nodes), reached through a Service (ClusterIP :80 -> pod :8080)';
