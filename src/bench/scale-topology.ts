/**
 * The YAML the bench's scale phase (./scale-runner.ts) writes: the simulated pods of the
 * agent's node, and the cluster around it that the agent only reads.
 *
 *   scalePods(max, ambient)   namespace `scale`, pods p-0001..p-MAX on node1 (10.244.1.10
 *                             onwards), the first `ambient` annotated nodemesh.dev/mode:
 *                             ambient, the rest "off". The simulator builds these.
 *   scaleServices(n, e)       n Services s-I, each selecting e Pod objects on nodes outside
 *                             the simulation (far-1..far-50, 10.200.0.0/16): the agent holds
 *                             their endpoints and identities but enrolls none of them.
 *   scaleChange(i)            one more Service with one Pod object: the change whose apply
 *                             time is measured.
 */

export const SCALE_NAMESPACE = 'scale';
export const SCALE_NODE = 'node1';
/** The simulator's node holds a /24: 10.244.1.10 up to .250. */
export const MAX_SCALE_PODS = 240;

export const scalePodKey = (i: number) => `${SCALE_NAMESPACE}/p-${String(i).padStart(4, '0')}`;

function namespace(): string {
  return `# nodemesh bench --scale (written by src/bench/scale-topology.ts)
apiVersion: v1
kind: Namespace
metadata: { name: ${SCALE_NAMESPACE} }
`;
}

export function scalePods(max: number, ambient: number): string {
  if (max > MAX_SCALE_PODS) throw new RangeError(`at most ${MAX_SCALE_PODS} scale pods, not ${max}`);
  let out = namespace();
  for (let i = 1; i <= max; i++) {
    const ip = `10.244.1.${9 + i}`;
    out += `---
apiVersion: v1
kind: Pod
metadata:
  name: p-${String(i).padStart(4, '0')}
  namespace: ${SCALE_NAMESPACE}
  labels: { app: p }
  annotations: { nodemesh.dev/mode: ${i <= ambient ? 'ambient' : '"off"'} }
spec:
  nodeName: ${SCALE_NODE}
  containers: [{ name: app, image: nodemesh/l7-app, ports: [{ name: http, containerPort: 8080 }] }]
status:
  podIP: ${ip}
  podIPs: [{ ip: ${ip} }]
`;
  }
  return out;
}

/** The k-th address of a /16 block (k from 0), skipping .0 and .255 of each /24. */
function address(prefix: string, k: number): string {
  return `${prefix}.${Math.floor(k / 250)}.${(k % 250) + 1}`;
}

function service(name: string, clusterIP: string): string {
  return `---
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${SCALE_NAMESPACE} }
spec:
  selector: { app: ${name} }
  clusterIP: ${clusterIP}
  clusterIPs: [${clusterIP}]
  ports: [{ name: http, port: 80, targetPort: 8080 }]
`;
}

function farPod(name: string, app: string, k: number): string {
  const ip = address('10.200', k);
  return `---
apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: ${SCALE_NAMESPACE}, labels: { app: ${app} } }
spec:
  nodeName: far-${(k % 50) + 1}
  containers: [{ name: app, image: nodemesh/l7-app, ports: [{ name: http, containerPort: 8080 }] }]
status:
  podIP: ${ip}
  podIPs: [{ ip: ${ip} }]
  conditions: [{ type: Ready, status: "True" }]
`;
}

export function scaleServices(services: number, endpointsPerService: number): string {
  const parts: string[] = [`# ${services} Services x ${endpointsPerService} (written by src/bench/scale-topology.ts)\n`];
  for (let i = 0; i < services; i++) {
    const name = `s-${i}`;
    parts.push(service(name, address('10.97', i)));
    for (let j = 0; j < endpointsPerService; j++) parts.push(farPod(`${name}-${j}`, name, i * endpointsPerService + j));
  }
  return parts.join('');
}

/** Change i (from 0): Service change-i with one Pod object, addresses apart from scaleServices'. */
export function scaleChange(i: number): string {
  const name = `change-${i}`;
  return service(name, address('10.98', i)) + farPod(`${name}-0`, name, 60_000 + i);
}
