import { canonicalIP, ipFamily, ipInCIDR } from '../../config/ip';
import { selectorMatches } from '../../config/endpoints';
import type { ServiceInfo } from '../../mesh/model';
import { CLUSTER_DOMAIN, type HostsPod } from '../hosts';
import { RCODE_NOERROR, RCODE_NXDOMAIN, RCODE_REFUSED, TYPE_A, TYPE_AAAA, TYPE_ANY, TYPE_PTR, CLASS_ANY, CLASS_IN, type DnsAnswer, type DnsQuestion, type DnsResponse } from './message';

/**
 * What the simulator's resolver knows: the names cluster DNS gives a cluster's Services
 * and pods (the Kubernetes DNS specification, as CoreDNS answers them), built from the
 * simulation's topology by `sim up` and written for the server as JSON.
 *
 * - `<svc>.<ns>.svc.cluster.local`: the Service's cluster IPs; a headless Service's ready
 *   pods, each also as `<a-b-c-d>.<svc>.<ns>.svc.cluster.local`.
 * - `<a-b-c-d>.<ns>.pod.cluster.local` (IPv6: colons as dashes): the pod's address.
 * - PTR: a cluster IP gives its Service's name; a pod IP its headless Service record, or
 *   else its pod record, so that a reverse lookup names what the forward one answers.
 *   (CoreDNS has PTRs only for the first two; a pod record is what the simulator adds,
 *   so that every pod address has a name.)
 *
 * Everything else is answered at once: a name under cluster.local (or an address of the
 * simulation's ranges) that does not exist is NXDOMAIN, any other name REFUSED (the
 * simulation has no upstream: CoreDNS without `forward` answers the same). No client
 * ever waits for a timeout.
 */

export const DNS_TTL_SECONDS = 5;

export interface DnsZone {
  domain: string;
  /** Lower-case name (no final dot) -> addresses. */
  names: Record<string, string[]>;
  /** Canonical address -> name. */
  ptr: Record<string, string>;
  /** CIDRs whose reverse names are the simulation's (NXDOMAIN rather than REFUSED). */
  reverseCidrs: string[];
}

/** "10.244.1.11" -> "10-244-1-11"; "fd00:244:1::b" -> "fd00-244-1--b" (as CoreDNS writes pod names). */
export function dashedIP(ip: string): string {
  return ip.replace(/[.:]/g, '-');
}

export function buildDnsZone(services: readonly ServiceInfo[], pods: readonly HostsPod[], reverseCidrs: readonly string[]): DnsZone {
  const zone: DnsZone = { domain: CLUSTER_DOMAIN, names: {}, ptr: {}, reverseCidrs: [...reverseCidrs] };
  const add = (name: string, ip: string): void => {
    const key = name.toLowerCase();
    const list = (zone.names[key] ??= []);
    if (!list.includes(ip)) list.push(ip);
  };
  const reverse = (ip: string, name: string): void => {
    zone.ptr[ip] ??= name.toLowerCase();
  };
  const sorted = [...services].sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`));
  for (const svc of sorted) {
    const fqdn = `${svc.name}.${svc.namespace}.svc.${CLUSTER_DOMAIN}`;
    if (svc.clusterIPs.length > 0) {
      for (const ip of svc.clusterIPs) {
        add(fqdn, ip);
        reverse(ip, fqdn);
        zone.reverseCidrs.push(`${ip}/${ipFamily(ip) === 6 ? 128 : 32}`);
      }
    } else if (svc.selector !== undefined) {
      for (const pod of pods) {
        if (pod.namespace !== svc.namespace || pod.hostNetwork || pod.ready === false || !selectorMatches(svc.selector, pod.labels)) continue;
        for (const ip of pod.ips) {
          add(fqdn, ip);
          const own = `${dashedIP(ip)}.${fqdn}`;
          add(own, ip);
          reverse(ip, own);
        }
      }
    }
  }
  for (const pod of pods) {
    if (pod.hostNetwork) continue; // its addresses are the node's
    for (const ip of pod.ips) {
      const name = `${dashedIP(ip)}.${pod.namespace}.pod.${CLUSTER_DOMAIN}`;
      add(name, ip);
      reverse(ip, name);
    }
  }
  return zone;
}

/** "11.1.244.10.in-addr.arpa" -> "10.244.1.11"; nibble ip6.arpa names likewise; else undefined. */
export function reverseNameToIP(name: string): string | undefined {
  const lower = name.toLowerCase();
  if (lower.endsWith('.in-addr.arpa')) {
    const parts = lower.slice(0, -'.in-addr.arpa'.length).split('.');
    if (parts.length !== 4 || parts.some((p) => !/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > 255)) return undefined;
    return parts.reverse().join('.');
  }
  if (lower.endsWith('.ip6.arpa')) {
    const nibbles = lower.slice(0, -'.ip6.arpa'.length).split('.');
    if (nibbles.length !== 32 || nibbles.some((n) => !/^[0-9a-f]$/.test(n))) return undefined;
    const hex = nibbles.reverse().join('');
    return canonicalIP(hex.match(/.{4}/g)!.join(':'));
  }
  return undefined;
}

function inZone(name: string, domain: string): boolean {
  return name === domain || name.endsWith(`.${domain}`);
}

/** A name that exists: one of the zone's, or a name above one (an "empty non-terminal"). */
function nameExists(zone: DnsZone, name: string): boolean {
  if (name === zone.domain || zone.names[name] !== undefined) return true;
  const suffix = `.${name}`;
  return Object.keys(zone.names).some((n) => n.endsWith(suffix));
}

/** The answer to one question; never waits, never forwards. */
export function answerQuestion(zone: DnsZone, question: DnsQuestion): DnsResponse {
  const reply = (rcode: number, answers: DnsAnswer[] = [], authoritative = true): DnsResponse => ({ rcode, authoritative, answers, ttl: DNS_TTL_SECONDS });
  if (question.class !== CLASS_IN && question.class !== CLASS_ANY) return reply(RCODE_REFUSED, [], false);
  const name = question.name.toLowerCase().replace(/\.$/, '');
  const wantsType = (type: number): boolean => question.type === type || question.type === TYPE_ANY;

  if (inZone(name, zone.domain)) {
    if (!nameExists(zone, name)) return reply(RCODE_NXDOMAIN);
    const answers: DnsAnswer[] = [];
    for (const ip of zone.names[name] ?? []) {
      const family = ipFamily(ip);
      if (family === 4 && wantsType(TYPE_A)) answers.push({ type: TYPE_A, address: ip });
      if (family === 6 && wantsType(TYPE_AAAA)) answers.push({ type: TYPE_AAAA, address: ip });
    }
    return reply(RCODE_NOERROR, answers); // no address of that family: NODATA
  }

  const ip = reverseNameToIP(name);
  if (ip !== undefined) {
    const target = zone.ptr[ip];
    if (target !== undefined) return reply(RCODE_NOERROR, wantsType(TYPE_PTR) ? [{ type: TYPE_PTR, target }] : []);
    if (zone.reverseCidrs.some((cidr) => ipInCIDR(ip, cidr))) return reply(RCODE_NXDOMAIN);
  }
  return reply(RCODE_REFUSED, [], false);
}
