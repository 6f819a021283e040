import { createHash } from 'node:crypto';
import { resolveEndpoints } from '../config/endpoints';
import { NodemeshError } from '../errors';
import { ipFamily } from '../config/ip';
import { serviceKey, type PodInfo, type ServiceInfo } from '../mesh/model';
import { Iptables, type IptablesBackend } from '../netfilter/iptables';
import { formatHostPort } from '../util/host-port';
import type { SimService } from './state';

/**
 * The simulator's stand-in for kube-proxy in iptables mode: in each node's namespace,
 * nat PREROUTING sends a Service's cluster IP:port to one of its ready endpoints, chosen
 * with `-m statistic --mode random` like kube-proxy does. Pods that are not enrolled in
 * the mesh reach Services through it; enrolled pods never get here (the agent resolves
 * Services itself).
 *
 * The chains are owned wholesale: every `up` rewrites them in one iptables-restore batch
 * per family, and deletes the per-service chains of Services that went away.
 */

export const SERVICES_CHAIN = 'NMSIM-SERVICES';
export const POSTROUTING_CHAIN = 'NMSIM-POSTROUTING';
export const MARK_MASQ_CHAIN = 'NMSIM-MARK-MASQ';
const SVC_PREFIX = 'NMSVC-';
const SEP_PREFIX = 'NMSEP-';
/** The hairpin mark: a pod reaching itself through its Service is masqueraded (as kube-proxy does). */
export const MASQ_MARK = '0x4000';

function chainHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16).toUpperCase();
}

function hostPrefix(ip: string): string {
  return ipFamily(ip) === 6 ? `${ip}/128` : `${ip}/32`;
}

function target(ip: string, port: number): string {
  return formatHostPort(ip, port);
}

/** kube-proxy's probability for endpoint i of n: 1/(n-i), printed with 10 decimals. */
export function probability(i: number, n: number): string {
  return (1 / (n - i)).toFixed(10);
}

export interface ServiceRules {
  /** iptables-restore input for the nat table. */
  text: string;
  /** The per-service and per-endpoint chains it defines. */
  chains: string[];
  /** What each Service port resolved to, for the state file. */
  services: SimService[];
}

/**
 * The nat rules of one family. `existingChains` are the chain names currently in the
 * table; stale NMSVC-/NMSEP- ones among them are flushed and deleted.
 */
export function buildServiceRules(family: 4 | 6, services: readonly ServiceInfo[], pods: readonly PodInfo[], existingChains: readonly string[] = []): ServiceRules {
  const chains: string[] = [];
  const rules: string[] = [];
  const summary: SimService[] = [];
  const sortedServices = [...services].sort((a, b) => (serviceKey(a) < serviceKey(b) ? -1 : 1));
  for (const svc of sortedServices) {
    const key = serviceKey(svc);
    const entry: SimService = { key, namespace: svc.namespace, name: svc.name, clusterIPs: [...svc.clusterIPs], ports: [] };
    summary.push(entry);
    const clusterIP = svc.clusterIPs.find((ip) => ipFamily(ip) === family);
    for (const port of svc.ports) {
      const endpoints = clusterIP === undefined ? [] : resolveEndpoints(svc, port, pods, { family });
      const described = endpoints.map((e) => target(e.address, e.port));
      const portEntry: SimService['ports'][number] = { port: port.port, protocol: port.protocol, targetPort: port.targetPort, endpoints: described };
      if (port.name !== undefined) portEntry.name = port.name;
      entry.ports.push(portEntry);
      if (clusterIP === undefined || endpoints.length === 0) continue;
      const portLabel = `${key}:${port.name ?? port.port}`;
      const proto = port.protocol.toLowerCase();
      const svcChain = `${SVC_PREFIX}${chainHash(`${family}/${portLabel}/${port.protocol}`)}`;
      chains.push(svcChain);
      rules.push(`-A ${SERVICES_CHAIN} -d ${hostPrefix(clusterIP)} -p ${proto} -m comment --comment "${portLabel} cluster IP" -m ${proto} --dport ${port.port} -j ${svcChain}`);
      endpoints.forEach((ep, i) => {
        const sepChain = `${SEP_PREFIX}${chainHash(`${family}/${portLabel}/${port.protocol}/${ep.address}/${ep.port}`)}`;
        chains.push(sepChain);
        const pick = i < endpoints.length - 1 ? ` -m statistic --mode random --probability ${probability(i, endpoints.length)}` : '';
        rules.push(`-A ${svcChain} -m comment --comment "${portLabel} -> ${target(ep.address, ep.port)}"${pick} -j ${sepChain}`);
        rules.push(`-A ${sepChain} -s ${hostPrefix(ep.address)} -j ${MARK_MASQ_CHAIN}`);
        rules.push(`-A ${sepChain} -p ${proto} -m ${proto} -j DNAT --to-destination ${target(ep.address, ep.port)}`);
      });
    }
  }
  const stale = existingChains.filter((c) => (c.startsWith(SVC_PREFIX) || c.startsWith(SEP_PREFIX)) && !chains.includes(c));
  const lines = [
    '*nat',
    // Declaring a chain in a --noflush restore creates it, or flushes it when it exists.
    ...[SERVICES_CHAIN, POSTROUTING_CHAIN, MARK_MASQ_CHAIN, ...chains, ...stale].map((c) => `:${c} - [0:0]`),
    `-A ${MARK_MASQ_CHAIN} -j MARK --or-mark ${MASQ_MARK}`,
    `-A ${POSTROUTING_CHAIN} -m mark ! --mark ${MASQ_MARK}/${MASQ_MARK} -j RETURN`,
    `-A ${POSTROUTING_CHAIN} -j MARK --xor-mark ${MASQ_MARK}`,
    `-A ${POSTROUTING_CHAIN} -j MASQUERADE`,
    ...rules,
    ...stale.map((c) => `-X ${c}`),
    'COMMIT',
    '',
  ];
  return { text: lines.join('\n'), chains, services: summary };
}

/** Chain names of an iptables-save dump. */
export function chainsIn(saved: string): string[] {
  return saved
    .split('\n')
    .filter((l) => l.startsWith(':'))
    .map((l) => l.slice(1).split(' ')[0]!);
}

/**
 * Installs the rules of both families in one node namespace and hooks them into
 * PREROUTING and POSTROUTING (once). Returns the resolved Services (from the IPv4 pass,
 * with the IPv6 endpoints appended).
 */
export async function applyServiceRules(backend: IptablesBackend, netnsPath: string, services: readonly ServiceInfo[], pods: readonly PodInfo[]): Promise<SimService[]> {
  const ipt = new Iptables(backend, netnsPath);
  let summary: SimService[] = [];
  for (const family of [4, 6] as const) {
    const existing = chainsIn(await ipt.save(family, 'nat'));
    const built = buildServiceRules(family, services, pods, existing);
    await ipt.restore(family, built.text);
    for (const [hook, chain] of [
      ['PREROUTING', SERVICES_CHAIN],
      ['POSTROUTING', POSTROUTING_CHAIN],
    ] as const) {
      if ((await ipt.command(family, ['-t', 'nat', '-C', hook, '-j', chain])) !== 0) {
        const status = await ipt.command(family, ['-t', 'nat', '-A', hook, '-j', chain]);
        if (status !== 0) {
          throw new NodemeshError('ERR_NM_SIM_IPTABLES', `cannot hook ${chain} into nat ${hook} (IPv${family}) in ${netnsPath}`, {
            hint: `inspect with \`nsenter --net=${netnsPath} ${family === 6 ? 'ip6tables' : 'iptables'}-${backend}-save -t nat\``,
          });
        }
      }
    }
    if (family === 4) summary = built.services;
    else {
      built.services.forEach((svc, i) => svc.ports.forEach((p, j) => summary[i]!.ports[j]!.endpoints.push(...p.endpoints)));
    }
  }
  return summary;
}
