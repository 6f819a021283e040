import { podKey, type Endpoint, type PodInfo, type ServiceInfo, type ServicePort } from '../mesh/model';
import { ipFamily, type IpFamily } from './ip';

/**
 * What the endpoints controller does in a cluster: a Service port becomes the addresses
 * of the pods its selector matches. Used where no EndpointSlices exist (the YAML source):
 * by the simulator's kube-proxy stand-in and by the agent.
 */

export interface ResolveOptions {
  /** Address family of the endpoints; default: the family of the Service's first cluster IP. */
  family?: IpFamily;
  /** Also return pods that are not ready (marked ready: false); default false. */
  includeNotReady?: boolean;
}

/** Equality-based selector match, as Services use it. An empty selector matches nothing. */
export function selectorMatches(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  if (selector === undefined) return false;
  const entries = Object.entries(selector);
  if (entries.length === 0) return false;
  return entries.every(([key, value]) => labels[key] === value);
}

/**
 * The pod port a Service port sends to: a number as is, a name looked up among the pod's
 * container ports with the same protocol. undefined when the pod has no such named port
 * (Kubernetes leaves that pod out of the Service's endpoints).
 */
export function resolveTargetPort(port: ServicePort, pod: PodInfo): number | undefined {
  if (typeof port.targetPort === 'number') return port.targetPort;
  const match = pod.containerPorts.find((cp) => cp.name === port.targetPort && cp.protocol === port.protocol);
  return match?.port;
}

/** The family a Service's endpoints use by default. */
export function serviceFamily(service: ServiceInfo): IpFamily | undefined {
  const first = service.clusterIPs[0];
  if (first === undefined) return undefined;
  const family = ipFamily(first);
  return family === 0 ? undefined : family;
}

/**
 * Endpoints of one port of a Service, sorted by address. Pods from the Service's
 * namespace whose labels match its selector and that hold an address of the family.
 * A Service without a selector has none here (its endpoints come from EndpointSlices).
 */
export function resolveEndpoints(service: ServiceInfo, port: ServicePort, pods: Iterable<PodInfo>, options: ResolveOptions = {}): Endpoint[] {
  if (service.selector === undefined) return [];
  const family = options.family ?? serviceFamily(service);
  const out: Endpoint[] = [];
  for (const pod of pods) {
    if (pod.namespace !== service.namespace) continue;
    if (!selectorMatches(service.selector, pod.labels)) continue;
    if (!pod.ready && !options.includeNotReady) continue;
    const address = family === undefined ? pod.ips[0] : pod.ips.find((ip) => ipFamily(ip) === family);
    if (address === undefined) continue;
    const target = resolveTargetPort(port, pod);
    if (target === undefined) continue;
    out.push({
      address,
      port: target,
      podKey: podKey(pod),
      nodeName: pod.nodeName,
      ready: pod.ready,
      serving: pod.ready,
      terminating: false,
    });
  }
  // Two pods may share an address (one finishing, one starting): the pod key orders them, not the order pods came in.
  return out.sort((a, b) => (a.address !== b.address ? (a.address < b.address ? -1 : 1) : a.port !== b.port ? a.port - b.port : a.podKey! < b.podKey! ? -1 : a.podKey! > b.podKey! ? 1 : 0));
}
