import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseK8sYaml } from './k8s-yaml';
import { convertObjects, type ConvertedObjects } from './objects';

function convert(text: string, file = 'mesh.yaml'): ConvertedObjects {
  const parsed = parseK8sYaml(text, file);
  assert.deepEqual(parsed.problems, []);
  return convertObjects(parsed.objects);
}

const POD = `
apiVersion: v1
kind: Pod
metadata: { name: a1, namespace: demo, labels: { app: a }, annotations: { nodemesh.dev/mode: ambient } }
spec:
  nodeName: node1
  containers: [{ name: app, image: x, ports: [{ name: http, containerPort: 8080 }] }]
status:
  podIP: 10.244.1.11
  podIPs: [{ ip: 10.244.1.11 }, { ip: "FD00:244:1:0::0B" }]
`;

test('a Pod becomes a PodInfo with defaults and canonical addresses', () => {
  const out = convert(POD);
  assert.deepEqual(out.rejected, []);
  assert.equal(out.pods.length, 1);
  const pod = out.pods[0]!;
  assert.equal(pod.namespace, 'demo');
  assert.equal(pod.serviceAccount, 'default');
  assert.deepEqual(pod.ips, ['10.244.1.11', 'fd00:244:1::b']);
  assert.deepEqual(pod.containerPorts, [{ name: 'http', port: 8080, protocol: 'TCP' }]);
  assert.equal(pod.hostNetwork, false);
  assert.equal(pod.ready, true);
  assert.match(pod.uid, /^[0-9a-f]{8}-[0-9a-f]{4}-/);
  assert.equal(convert(POD).pods[0]!.uid, pod.uid, 'a synthetic uid is stable');
});

test('a Service gets namespace default, protocol TCP and targetPort = port', () => {
  const out = convert(`
kind: Service
apiVersion: v1
metadata: { name: web }
spec: { clusterIP: 10.96.0.10, selector: { app: web }, ports: [{ port: 80 }] }
`);
  assert.deepEqual(out.rejected, []);
  assert.deepEqual(out.services, [
    { name: 'web', namespace: 'default', clusterIPs: ['10.96.0.10'], ports: [{ port: 80, targetPort: 80, protocol: 'TCP' }], selector: { app: 'web' } },
  ]);
});

test('headless and selector-less Services', () => {
  const out = convert(`
kind: Service
metadata: { name: h }
spec: { clusterIP: None, selector: {}, ports: [{ port: 80, targetPort: http }] }
`);
  assert.deepEqual(out.rejected, []);
  assert.deepEqual(out.services[0]!.clusterIPs, []);
  assert.equal(out.services[0]!.selector, undefined);
  assert.equal(out.services[0]!.ports[0]!.targetPort, 'http');
});

/** One bad object among good ones: rejected with file, object and field path. */
function rejectOne(doc: string, object: string, path: string, reasonPart: RegExp): void {
  const good = `kind: Namespace\nmetadata: { name: good }\n`;
  const out = convert(`${good}---\n${doc}`, 'dir/bad.yaml');
  assert.equal(out.namespaces.length, 1, 'the good object still applies');
  assert.equal(out.rejected.length, 1, JSON.stringify(out.rejected));
  const r = out.rejected[0]!;
  assert.equal(r.code, 'ERR_NM_CONFIG_INVALID');
  assert.equal(r.file, 'dir/bad.yaml');
  assert.equal(r.object, object);
  assert.equal(r.path, path);
  assert.ok(r.reason.startsWith(`dir/bad.yaml: ${object}: ${path}: `), r.reason);
  assert.match(r.reason, reasonPart);
}

test('missing metadata.name is rejected', () => {
  rejectOne('kind: Pod\nmetadata: { namespace: demo }\nspec: { nodeName: n }\nstatus: { podIP: 10.0.0.1 }', 'Pod (document 1)', 'metadata.name', /required/);
});

test('a Pod without status.podIP or spec.nodeName is rejected', () => {
  rejectOne('kind: Pod\nmetadata: { name: p, namespace: demo }\nspec: { nodeName: n }', 'Pod demo/p', 'status.podIP', /required/);
  rejectOne('kind: Pod\nmetadata: { name: p }\nspec: { nodeName: n }\nstatus: { phase: Running }', 'Pod default/p', 'status.podIP', /required/);
  rejectOne('kind: Pod\nmetadata: { name: p }\nspec: {}\nstatus: { podIP: 10.0.0.1 }', 'Pod default/p', 'spec.nodeName', /required/);
});

test('a Service port without a port number is rejected', () => {
  rejectOne('kind: Service\nmetadata: { name: s, namespace: demo }\nspec: { clusterIP: 10.96.0.1, ports: [{ targetPort: 8080 }] }', 'Service demo/s', 'spec.ports[0].port', /required \(a port number/);
  rejectOne('kind: Service\nmetadata: { name: s }\nspec: { clusterIP: 10.96.0.1, ports: [{ name: a, port: 80 }, { name: b, port: 70000 }] }', 'Service default/s', 'spec.ports[1].port', /1-65535/);
  rejectOne('kind: Service\nmetadata: { name: s }\nspec: { clusterIP: 10.96.0.1, ports: [{ port: 80 }, { name: b, port: 81 }] }', 'Service default/s', 'spec.ports[0].name', /more than one port/);
});

test('a non-string label is rejected', () => {
  rejectOne('kind: Pod\nmetadata: { name: p, labels: { version: 2 } }\nspec: { nodeName: n }\nstatus: { podIP: 10.0.0.1 }', 'Pod default/p', 'metadata.labels["version"]', /must be a string, got number 2; quote it/);
  rejectOne('kind: Namespace\nmetadata: { name: ns, labels: { on: true } }', 'Namespace ns', 'metadata.labels["on"]', /boolean true/);
});

test('an invalid IP is rejected', () => {
  rejectOne('kind: Pod\nmetadata: { name: p }\nspec: { nodeName: n }\nstatus: { podIP: 10.244.1.300 }', 'Pod default/p', 'status.podIP', /"10.244.1.300" is not a valid IP address/);
  rejectOne('kind: Service\nmetadata: { name: s }\nspec: { clusterIP: "fd00::zz", ports: [{ port: 80 }] }', 'Service default/s', 'spec.clusterIP', /not a valid IP/);
  rejectOne('kind: Pod\nmetadata: { name: p }\nspec: { nodeName: n }\nstatus: { podIP: 10.0.0.1, podIPs: [{ip: 10.0.0.1}, {ip: 10.0.0.2}] }', 'Pod default/p', 'status.podIPs[1].ip', /one address per IP family/);
});

test('an unknown nodemesh.dev/mode is rejected, on pods and namespaces', () => {
  rejectOne('kind: Pod\nmetadata: { name: p, annotations: { nodemesh.dev/mode: ambiant } }\nspec: { nodeName: n }\nstatus: { podIP: 10.0.0.1 }', 'Pod default/p', 'metadata.annotations["nodemesh.dev/mode"]', /"ambiant" is not a mesh mode \(use one of ambient, sidecar, off\)/);
  rejectOne('kind: Namespace\nmetadata: { name: ns, labels: { nodemesh.dev/mode: "yes" } }', 'Namespace ns', 'metadata.labels["nodemesh.dev/mode"]', /not a mesh mode/);
});

test('a Service without a cluster IP is rejected with the way out', () => {
  rejectOne('kind: Service\nmetadata: { name: s }\nspec: { ports: [{ port: 80 }] }', 'Service default/s', 'spec.clusterIP', /'None' for a headless Service/);
});

test('unknown kinds are kept in others; Lists are flattened; duplicates rejected', () => {
  const out = convert(`
apiVersion: v1
kind: List
items:
- { apiVersion: gateway.networking.k8s.io/v1, kind: HTTPRoute, metadata: { name: r, namespace: demo }, spec: {} }
- { apiVersion: v1, kind: Namespace, metadata: { name: demo } }
---
apiVersion: v1
kind: NamespaceList
items:
- { metadata: { name: other } }
- { metadata: { name: demo } }
---
kind: Node
metadata: { name: node3 }
`);
  assert.deepEqual(out.namespaces.map((n) => n.name), ['demo', 'other']);
  assert.deepEqual(out.others.map((o) => `${o.kind} ${o.namespace}/${o.name}`), ['HTTPRoute demo/r', 'Node undefined/node3']);
  assert.equal(out.rejected.length, 1);
  assert.match(out.rejected[0]!.reason, /^mesh\.yaml: Namespace demo: duplicate: the same object is already defined in mesh\.yaml/);
});

test('documents that are not objects are problems, not crashes; syntax errors throw', () => {
  const parsed = parseK8sYaml('---\n- a\n- b\n---\n\n---\nmetadata: {}\n', 'x.yaml');
  assert.equal(parsed.objects.length, 0);
  assert.deepEqual(parsed.problems.map((p) => p.object), ['document 0', 'document 2']);
  assert.throws(() => parseK8sYaml('kind: Pod\nmetadata: { name: [\n', 'x.yaml'), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'ERR_NM_CONFIG_SYNTAX');
    assert.match(err.message, /^x\.yaml: YAML syntax error at line \d+, column \d+/);
    return true;
  });
});
