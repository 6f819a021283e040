import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ServiceInfo } from '../../mesh/model';
import type { HostsPod } from '../hosts';
import { RCODE_NOERROR, RCODE_NXDOMAIN, RCODE_REFUSED, TYPE_A, TYPE_AAAA, TYPE_PTR, type DnsResponse } from './message';
import { answerQuestion, buildDnsZone, dashedIP, reverseNameToIP } from './zone';
import { buildResolvConf } from './resolv-conf';

const services: ServiceInfo[] = [
  { name: 'b', namespace: 'demo', clusterIPs: ['10.96.0.20', 'fd00:96::20'], ports: [], selector: { app: 'b' } },
  { name: 'db', namespace: 'demo', clusterIPs: [], ports: [], selector: { app: 'db' } },
];
const pods: HostsPod[] = [
  { namespace: 'demo', name: 'b1', ips: ['10.244.1.11', 'fd00:244:1::b'], labels: { app: 'b' }, hostNetwork: false },
  { namespace: 'demo', name: 'db1', ips: ['10.244.2.11'], labels: { app: 'db' }, hostNetwork: false },
  { namespace: 'demo', name: 'db2', ips: ['10.244.2.12'], labels: { app: 'db' }, hostNetwork: false, ready: false },
  { namespace: 'kube-system', name: 'host', ips: ['10.255.0.1'], labels: { app: 'db' }, hostNetwork: true },
];
const zone = buildDnsZone(services, pods, ['10.244.1.0/24', '10.244.2.0/24', 'fd00:244:1::/64', '10.255.0.0/24']);

function ask(name: string, type: number): DnsResponse {
  return answerQuestion(zone, { name, type, class: 1 });
}

function addresses(r: DnsResponse): string[] {
  return r.answers.map((a) => ('address' in a ? a.address : a.target));
}

test('a Service name gives its cluster IPs, per family, in any case and with a final dot', () => {
  assert.deepEqual(addresses(ask('b.demo.svc.cluster.local', TYPE_A)), ['10.96.0.20']);
  assert.deepEqual(addresses(ask('B.Demo.SVC.cluster.local.', TYPE_AAAA)), ['fd00:96::20']);
  const r = ask('b.demo.svc.cluster.local', TYPE_A);
  assert.equal(r.rcode, RCODE_NOERROR);
  assert.equal(r.authoritative, true);
});

test('a headless Service gives its ready pods, each with a name of its own; hostNetwork pods are not its endpoints', () => {
  assert.deepEqual(addresses(ask('db.demo.svc.cluster.local', TYPE_A)), ['10.244.2.11']);
  assert.deepEqual(addresses(ask('10-244-2-11.db.demo.svc.cluster.local', TYPE_A)), ['10.244.2.11']);
  assert.equal(ask('10-244-2-12.db.demo.svc.cluster.local', TYPE_A).rcode, RCODE_NXDOMAIN);
});

test('pod records as CoreDNS writes them, IPv6 with dashes', () => {
  assert.equal(dashedIP('fd00:244:1::b'), 'fd00-244-1--b');
  assert.deepEqual(addresses(ask('10-244-1-11.demo.pod.cluster.local', TYPE_A)), ['10.244.1.11']);
  assert.deepEqual(addresses(ask('fd00-244-1--b.demo.pod.cluster.local', TYPE_AAAA)), ['fd00:244:1::b']);
  assert.equal(ask('10-255-0-1.kube-system.pod.cluster.local', TYPE_A).rcode, RCODE_NXDOMAIN, 'a hostNetwork pod has the node address, no pod record');
});

test('PTR: a cluster IP names its Service, a pod IP its headless record or else its pod record', () => {
  assert.equal(reverseNameToIP('20.0.96.10.in-addr.arpa'), '10.96.0.20');
  assert.equal(reverseNameToIP(`${[...'fd00024400010000000000000000000'].reverse().join('.')}.ip6.arpa`), undefined, '31 nibbles is no address');
  const v6 = [...'fd000244000100000000000000000000'.slice(0, 31), 'b'].reverse().join('.');
  assert.equal(reverseNameToIP(`${v6}.ip6.arpa`), 'fd00:244:1::b');
  assert.deepEqual(addresses(ask('20.0.96.10.in-addr.arpa', TYPE_PTR)), ['b.demo.svc.cluster.local']);
  assert.deepEqual(addresses(ask('11.1.244.10.in-addr.arpa', TYPE_PTR)), ['10-244-1-11.demo.pod.cluster.local']);
  assert.deepEqual(addresses(ask('11.2.244.10.in-addr.arpa', TYPE_PTR)), ['10-244-2-11.db.demo.svc.cluster.local']);
  assert.deepEqual(addresses(ask(`${v6}.ip6.arpa`, TYPE_PTR)), ['fd00-244-1--b.demo.pod.cluster.local']);
});

test('what does not exist is answered at once: NXDOMAIN inside the simulation, REFUSED outside', () => {
  assert.equal(ask('nope.demo.svc.cluster.local', TYPE_A).rcode, RCODE_NXDOMAIN);
  // The search list's first tries for a short outside name: each one NXDOMAIN, no wait.
  assert.equal(ask('example.com.demo.svc.cluster.local', TYPE_A).rcode, RCODE_NXDOMAIN);
  assert.equal(ask('99.1.244.10.in-addr.arpa', TYPE_PTR).rcode, RCODE_NXDOMAIN, 'an unused pod address');
  for (const [name, type] of [['example.com', TYPE_A], ['localhost.localdomain', TYPE_AAAA], ['8.8.8.8.in-addr.arpa', TYPE_PTR], ['cluster.local.example', TYPE_A]] as const) {
    const r = ask(name, type);
    assert.equal(r.rcode, RCODE_REFUSED, name);
    assert.equal(r.authoritative, false);
  }
});

test('a name that exists in the other family, or above other names, is NODATA, not NXDOMAIN', () => {
  const r = ask('db.demo.svc.cluster.local', TYPE_AAAA);
  assert.deepEqual([r.rcode, r.answers.length], [RCODE_NOERROR, 0]);
  assert.equal(ask('demo.svc.cluster.local', TYPE_A).rcode, RCODE_NOERROR);
  assert.equal(ask('cluster.local', TYPE_A).rcode, RCODE_NOERROR);
  assert.equal(ask('b.demo.svc.cluster.local', TYPE_PTR).answers.length, 0);
});

test('resolv.conf is a ClusterFirst pod\'s: the search list of its namespace and ndots:5', () => {
  const text = buildResolvConf({ simName: 'nm', owner: 'pod demo/b1', nameservers: ['10.244.1.1'], namespace: 'demo' });
  const lines = text.split('\n').filter((l) => !l.startsWith('#') && l !== '');
  assert.deepEqual(lines, ['nameserver 10.244.1.1', 'search demo.svc.cluster.local svc.cluster.local cluster.local', 'options ndots:5 timeout:5 attempts:1']);
});
