import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseK8sYaml } from '../config/k8s-yaml';
import { convertObjects } from '../config/objects';
import { resolveEndpoints } from '../config/endpoints';
import { MAX_SCALE_PODS, scaleChange, scalePods, scaleServices } from './scale-topology';

/** The objects the agent reads from these files, through the directory source's own parser and converter. */
function load(files: Record<string, string>) {
  return convertObjects(Object.entries(files).flatMap(([file, text]) => parseK8sYaml(text, file).objects));
}

test('scale pods: the first N ambient on node1, the rest off, addresses inside node1\'s /24', () => {
  const c = load({ 'pods.yaml': scalePods(30, 25) });
  assert.deepEqual(c.rejected, []);
  assert.equal(c.pods.length, 30);
  assert.equal(c.pods.filter((p) => p.annotations['nodemesh.dev/mode'] === 'ambient').length, 25);
  assert.ok(c.pods.every((p) => p.nodeName === 'node1' && /^10\.244\.1\.\d+$/.test(p.ips[0]!)));
  assert.equal(new Set(c.pods.map((p) => p.ips[0])).size, 30);
  assert.throws(() => scalePods(MAX_SCALE_PODS + 1, 0), RangeError);
});

test('scale Services: N Services of E ready endpoints each on far nodes, changes apart from them; nothing rejected', () => {
  const c = load({ 'pods.yaml': scalePods(1, 1), 'services.yaml': scaleServices(300, 10), 'change-0.yaml': scaleChange(0), 'change-1.yaml': scaleChange(1) });
  assert.deepEqual(c.rejected, []);
  assert.equal(c.services.length, 302);
  assert.equal(c.pods.length, 1 + 3000 + 2);
  assert.equal(new Set(c.pods.map((p) => p.ips[0])).size, c.pods.length, 'every Pod object its own address');
  assert.equal(new Set(c.services.map((s) => s.clusterIPs[0])).size, c.services.length, 'every Service its own cluster IP');
  assert.ok(c.pods.filter((p) => p.nodeName !== 'node1').every((p) => /^far-\d+$/.test(p.nodeName)), 'endpoints live outside the simulation');
  for (const name of ['s-0', 's-299', 'change-1']) {
    const svc = c.services.find((s) => s.name === name)!;
    const endpoints = resolveEndpoints(svc, svc.ports[0]!, c.pods);
    assert.equal(endpoints.length, name.startsWith('change') ? 1 : 10, name);
  }
});
