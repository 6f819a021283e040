import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseK8sYaml } from '../config/k8s-yaml';
import { convertObjects } from '../config/objects';
import type { PodInfo, ServiceInfo } from '../mesh/model';
import { buildHostsFile } from './hosts';
import { buildServiceRules, chainsIn, probability } from './kube-proxy';
import { nodeAddresses, podNetns, podVeth, validateSimName } from './names';
import { nodeRoutes, planTopology } from './topology';
import { simCommand } from './cli';

const EXAMPLE = join(__dirname, '..', '..', '..', 'deploy', 'examples', 'sim', 'topology.yaml');

function example() {
  const parsed = parseK8sYaml(readFileSync(EXAMPLE, 'utf8'), EXAMPLE);
  const out = convertObjects(parsed.objects);
  assert.deepEqual(out.rejected, []);
  return out;
}

function pod(name: string, node: string, ips: string[], extra: Partial<PodInfo> = {}): PodInfo {
  return { name, namespace: 'demo', uid: name, labels: { app: name[0]! }, annotations: {}, nodeName: node, ips, hostNetwork: false, serviceAccount: 'default', containerPorts: [{ name: 'http', port: 8080, protocol: 'TCP' }], ready: true, ...extra };
}

test('names: sim names, interface names within 15 characters, addresses', () => {
  assert.equal(validateSimName('nm'), 'nm');
  assert.throws(() => validateSimName('a-b'), { code: 'ERR_NM_SIM_NAME' });
  assert.throws(() => validateSimName(''), { code: 'ERR_NM_SIM_NAME' });
  assert.ok(podVeth('a-very-long-namespace-name', 'a-very-long-pod-name-0123456789').length <= 15);
  assert.equal(podNetns('nm', 'demo', 'a1'), 'nmsim-nm-pod-demo_a1');
  assert.deepEqual(nodeAddresses(2), { fabricIP: '10.255.0.2', fabricIPv6: 'fd00:255::2', podCIDR: '10.244.2.0/24', podCIDRv6: 'fd00:244:2::/64', gateway: '10.244.2.1', gatewayV6: 'fd00:244:2::1' });
  assert.equal(nodeAddresses(12).podCIDRv6, 'fd00:244:12::/64');
  assert.throws(() => nodeAddresses(255), RangeError);
});

test('the example topology: nodes in name order, pods on-link in their node CIDR', () => {
  const plan = planTopology('t1', example());
  assert.deepEqual(plan.skipped, []);
  assert.deepEqual(plan.nodes.map((n) => `${n.name}:${n.index}:${n.podCIDR}`), ['node1:1:10.244.1.0/24', 'node2:2:10.244.2.0/24']);
  assert.deepEqual(plan.pods.map((p) => `${p.key}@${p.node} ${p.ipv4} ${p.ipv6} ${p.ipv4OnLink}/${p.ipv6OnLink} ${p.mode}`), [
    'demo/a1@node1 10.244.1.11 fd00:244:1::11 true/true ambient',
    'demo/a2@node1 10.244.1.12 fd00:244:1::12 true/true off',
    'demo/b1@node2 10.244.2.11 fd00:244:2::11 true/true off',
  ]);
  assert.deepEqual(
    nodeRoutes(plan, 'node1', 'nmbr0', 'eth0').map((r) => `${r.dst} via ${r.via} dev ${r.dev}`),
    ['10.244.2.0/24 via 10.255.0.2 dev eth0', 'fd00:244:2::/64 via fd00:255::2 dev eth0'],
  );
});

test('node indexes stay put when nodes come and go', () => {
  const input = { namespaces: [], services: [], pods: [pod('a', 'zeta', ['10.244.1.5']), pod('b', 'beta', ['10.244.2.5'])] };
  const first = planTopology('t', input);
  assert.deepEqual(first.nodes.map((n) => `${n.name}:${n.index}`), ['beta:1', 'zeta:2']);
  const second = planTopology('t', { ...input, pods: [pod('a', 'zeta', ['10.244.1.5']), pod('c', 'alpha', ['10.9.9.9'])] }, first.nodes);
  assert.deepEqual(second.nodes.map((n) => `${n.name}:${n.index}`), ['alpha:1', 'zeta:2']);
});

test('off-CIDR pods get host routes; clashes are skipped with a reason', () => {
  const input = {
    namespaces: [],
    services: [],
    pods: [
      pod('a', 'n1', ['10.9.9.9', 'fd00:99::9']),
      pod('b', 'n2', ['10.244.2.5']),
      pod('c', 'n2', ['10.244.2.5']),
      pod('d', 'n2', ['10.244.2.1']),
      pod('e', 'n2', ['10.255.0.7']),
      pod('h', 'n2', ['192.168.1.10'], { hostNetwork: true }),
    ],
  };
  const plan = planTopology('t', input);
  assert.deepEqual(plan.pods.map((p) => p.key), ['demo/a', 'demo/b', 'demo/h']);
  assert.deepEqual(plan.skipped.map((s) => s.object), ['Pod demo/c', 'Pod demo/d', 'Pod demo/e']);
  assert.match(plan.skipped[0]!.reason, /already the address of Pod demo\/b/);
  assert.match(plan.skipped[1]!.reason, /node bridge address/);
  assert.match(plan.skipped[2]!.reason, /fabric range/);
  assert.equal(plan.pods.find((p) => p.key === 'demo/h')!.netns, 'nmsim-t-node-n2', 'hostNetwork pods live in the node namespace');
  const fmt = (node: string) => nodeRoutes(plan, node, 'nmbr0', 'eth0').map((r) => `${r.dst} ${r.via ?? '-'} ${r.dev}`);
  assert.ok(fmt('n1').includes('10.9.9.9/32 - nmbr0'));
  assert.ok(fmt('n1').includes('fd00:99::9/128 - nmbr0'));
  assert.ok(fmt('n2').includes('10.9.9.9/32 10.255.0.1 eth0'));
  assert.ok(fmt('n2').includes('fd00:99::9/128 fd00:255::1 eth0'));
});

test('kube-proxy rules: kube-proxy probabilities, hairpin masquerade, stale chains removed', () => {
  assert.equal(probability(0, 3), '0.3333333333');
  assert.equal(probability(1, 3), '0.5000000000');
  const ex = example();
  const v4 = buildServiceRules(4, ex.services, ex.pods, ['NMSVC-0000000000000000', 'KUBE-SVC-XYZ', 'PREROUTING']);
  const lines = v4.text.split('\n');
  assert.equal(lines[0], '*nat');
  assert.ok(lines.includes('COMMIT'));
  assert.ok(lines.some((l) => /^-A NMSIM-SERVICES -d 10\.96\.0\.11\/32 -p tcp .*--dport 80 -j NMSVC-/.test(l)));
  const picks = lines.filter((l) => l.includes('demo/a:http ->'));
  assert.equal(picks.length, 2);
  assert.match(picks[0]!, /--probability 0\.5000000000/);
  assert.doesNotMatch(picks[1]!, /probability/, 'the last endpoint takes the rest');
  assert.ok(lines.includes('-A NMSIM-POSTROUTING -j MASQUERADE'));
  assert.ok(lines.some((l) => /^-A NMSEP-\w+ -s 10\.244\.2\.11\/32 -j NMSIM-MARK-MASQ$/.test(l)));
  assert.ok(lines.some((l) => /-j DNAT --to-destination 10\.244\.2\.11:8080$/.test(l)));
  assert.ok(lines.includes(':NMSVC-0000000000000000 - [0:0]') && lines.includes('-X NMSVC-0000000000000000'), 'stale chain flushed and deleted');
  assert.ok(!lines.some((l) => l.includes('KUBE-SVC-XYZ')), "other people's chains are left alone");
  const v6 = buildServiceRules(6, ex.services, ex.pods);
  assert.ok(v6.text.includes('-d fd00:96::11/128'));
  assert.ok(v6.text.includes('--to-destination [fd00:244:2::11]:8080'));
  assert.deepEqual(v4.services.find((s) => s.key === 'demo/b')!.ports[0]!.endpoints, ['10.244.2.11:8080']);
  assert.deepEqual(chainsIn('*nat\n:PREROUTING ACCEPT [0:0]\n:NMSIM-SERVICES - [0:0]\n-A X\n'), ['PREROUTING', 'NMSIM-SERVICES']);
});

test('a Service without endpoints gets no DNAT rule', () => {
  const svc: ServiceInfo = { name: 'x', namespace: 'demo', clusterIPs: ['10.96.0.99'], ports: [{ port: 80, targetPort: 80, protocol: 'TCP' }], selector: { app: 'none' } };
  const rules = buildServiceRules(4, [svc], []);
  assert.ok(!rules.text.includes('10.96.0.99'));
  assert.deepEqual(rules.services[0]!.ports[0]!.endpoints, []);
});

test('hosts files: FQDN, ns-qualified and (own namespace only) short names', () => {
  const ex = example();
  const pods = ex.pods.map((p) => ({ ...p }));
  const own = buildHostsFile({ simName: 't', self: { namespace: 'demo', name: 'a2', ips: ['10.244.1.12'] } }, ex.services, pods, []);
  assert.match(own, /^10\.96\.0\.11\tb\.demo\.svc\.cluster\.local b\.demo b\.demo\.svc b$/m);
  assert.match(own, /^fd00:96::11\tb\.demo\.svc\.cluster\.local/m);
  assert.match(own, /^10\.244\.2\.11\tb1\.demo\.pod\.cluster\.local b1\.demo b1$/m);
  assert.match(own, /^127\.0\.0\.1\tlocalhost$/m);
  const other = buildHostsFile({ simName: 't', self: { namespace: 'default', name: 'x', ips: ['10.244.1.50'] } }, ex.services, pods, []);
  assert.match(other, /^10\.96\.0\.11\tb\.demo\.svc\.cluster\.local b\.demo b\.demo\.svc$/m, 'no bare name from another namespace');
  const headless: ServiceInfo = { name: 'h', namespace: 'demo', clusterIPs: [], ports: [], selector: { app: 'b' } };
  assert.match(buildHostsFile({ simName: 't', node: 'node1' }, [headless], pods, []), /^10\.244\.2\.11\th\.demo\.svc\.cluster\.local/m);
});

test('cli: usage errors exit 2 without touching the system', async () => {
  const out: string[] = [];
  const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(t) };
  assert.equal(await simCommand([], io), 2);
  assert.equal(await simCommand(['frobnicate'], io), 2);
  assert.equal(await simCommand(['up', '--bogus'], io), 2);
  assert.equal(await simCommand(['sim', 'exec', 'a1'], io), 1);
  assert.match(out.join(''), /sim exec needs POD -- CMD/);
  assert.equal(await simCommand(['help'], io), 0);
  assert.match(out.join(''), /nodemesh sim up/);
});
