import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { injectCommand } from '../cli/inject-command';
import { INIT_CONTAINER, PROXY_CONTAINER, PROXY_UID, injectObjects, injectPod, injectYaml, podPatch, type InjectOptions } from './inject';

const ROOT = resolve(__dirname, '..', '..', '..');
const FIXTURES = join(ROOT, 'test', 'fixtures', 'inject');
const OPTIONS: InjectOptions = { image: 'nodemesh/agent:0.1.0' };

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

function docs(text: string): Obj[] {
  return parseAllDocuments(text).map((d) => d.toJSON() as Obj).filter((o) => o !== null);
}

function pod(spec: Obj = {}, annotations?: Record<string, string>): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web', namespace: 'shop', ...(annotations ? { annotations } : {}) },
    spec: { containers: [{ name: 'web', image: 'nginx:1.27' }], ...spec },
  };
}

test('nodemesh inject on the sample Deployment gives the expected manifest', async () => {
  const input = readFileSync(join(FIXTURES, 'annotated-deployment.yaml'), 'utf8');
  // The fixture is the shipped example, so the test follows it.
  assert.equal(input, readFileSync(join(ROOT, 'deploy', 'examples', 'k8s', 'annotated-deployment.yaml'), 'utf8'), 'test/fixtures/inject/annotated-deployment.yaml is a copy of deploy/examples/k8s/annotated-deployment.yaml');
  let out = '';
  let err = '';
  const code = await injectCommand(['-f', 'in.yaml', '--image', 'nodemesh/agent:0.1.0'], {
    readInput: () => input,
    out: (t) => { out += t; },
    err: (t) => { err += t; },
  });
  assert.equal(code, 0);
  assert.deepEqual(docs(out), docs(readFileSync(join(FIXTURES, 'annotated-deployment.injected.yaml'), 'utf8')));
  assert.equal(err, [
    'nodemesh inject: skipped Namespace shop: not a workload',
    'nodemesh inject: skipped Service shop/reviews: not a workload',
    'nodemesh inject: skipped Job shop/report: annotation nodemesh.dev/mode is off',
    '',
  ].join('\n'));
});

test('the injected pod: init container, proxy container, annotations', () => {
  const [deployment] = injectYaml(readFileSync(join(FIXTURES, 'annotated-deployment.yaml'), 'utf8'), OPTIONS).objects.filter((o) => o.kind === 'Deployment');
  const template = deployment!.spec.template;
  assert.equal(template.metadata.annotations['nodemesh.dev/mode'], 'sidecar', 'ambient became sidecar');
  assert.equal(template.metadata.annotations['kubectl.kubernetes.io/default-container'], 'reviews');
  assert.deepEqual(template.spec.containers.map((c: Obj) => c.name), [PROXY_CONTAINER, 'reviews'], 'the proxy starts first');
  assert.deepEqual(template.spec.initContainers.map((c: Obj) => c.name), [INIT_CONTAINER]);

  const init = template.spec.initContainers[0];
  assert.deepEqual(init.command, ['nodemesh', 'sidecar-init']);
  assert.deepEqual(init.args, ['--pod-ip', '$(POD_IPS)', '--exclude-uid', '1337']);
  assert.equal(init.securityContext.runAsUser, 0);
  assert.equal(init.securityContext.runAsNonRoot, false, 'overrides a pod-level runAsNonRoot');
  assert.deepEqual(init.securityContext.capabilities, { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] });
  assert.equal(init.image, 'nodemesh/agent:0.1.0');

  const proxy = template.spec.containers[0];
  assert.deepEqual(proxy.args, ['sidecar', '--kube', '--pod', '$(POD_NAMESPACE)/$(POD_NAME)']);
  const fieldOf = (name: string) => proxy.env.find((e: Obj) => e.name === name)?.valueFrom?.fieldRef?.fieldPath;
  assert.equal(fieldOf('POD_NAME'), 'metadata.name');
  assert.equal(fieldOf('POD_NAMESPACE'), 'metadata.namespace');
  assert.equal(fieldOf('NODE_NAME'), 'spec.nodeName');
  // Every $(VAR) in args is defined in the container's env (the kubelet expands only those).
  for (const c of [init, proxy]) {
    const defined = new Set(c.env.map((e: Obj) => e.name));
    for (const arg of c.args as string[]) for (const m of arg.matchAll(/\$\(([A-Z_]+)\)/g)) assert.ok(defined.has(m[1]), `${c.name}: $(${m[1]})`);
  }
  assert.deepEqual(proxy.ports.map((p: Obj) => p.containerPort), [15020, 15021]);
  for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) assert.equal(proxy[probe].httpGet.port, 15021, probe);
  assert.equal(proxy.readinessProbe.httpGet.path, '/healthz/ready');
  assert.equal(proxy.livenessProbe.httpGet.path, '/healthz/live');
  assert.equal(proxy.securityContext.runAsUser, PROXY_UID);
  assert.equal(proxy.securityContext.runAsNonRoot, true);
  assert.deepEqual(proxy.securityContext.capabilities, { drop: ['ALL'] });
  assert.equal(proxy.securityContext.readOnlyRootFilesystem, true);
});

test('injecting twice gives the same output, byte for byte', () => {
  const input = readFileSync(join(FIXTURES, 'annotated-deployment.yaml'), 'utf8');
  const once = injectYaml(input, OPTIONS).yaml;
  const twice = injectYaml(once, OPTIONS);
  assert.equal(twice.yaml, once);
  // A pod with its own init containers: ours stays last, theirs keep their order.
  const withInits = pod({ initContainers: [{ name: 'migrate', image: 'm' }, { name: 'seed', image: 's' }] });
  const a = injectObjects([withInits], OPTIONS).objects[0]!;
  const b = injectObjects([a], OPTIONS).objects[0]!;
  assert.deepEqual(b, a);
  assert.deepEqual(a.spec.initContainers.map((c: Obj) => c.name), ['migrate', 'seed', INIT_CONTAINER]);
  // Re-injecting with another image updates both containers in place.
  const c = injectObjects([a], { image: 'reg.example/nodemesh:2' }).objects[0]!;
  assert.deepEqual(c.spec.containers.map((x: Obj) => [x.name, x.image]), [[PROXY_CONTAINER, 'reg.example/nodemesh:2'], ['web', 'nginx:1.27']]);
  assert.equal(c.spec.initContainers.at(-1).image, 'reg.example/nodemesh:2');
  assert.equal(c.spec.initContainers.length, 3);
});

test('skips: mode off, hostNetwork, a namespace labelled off, non-workloads; reported with the reason', () => {
  const objects: Obj[] = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'batch', labels: { 'nodemesh.dev/mode': 'off' } } },
    pod({}, { 'nodemesh.dev/mode': 'off' }),
    { ...pod({ hostNetwork: true }), metadata: { name: 'node-exporter', namespace: 'monitoring' } },
    { ...pod(), metadata: { name: 'cron', namespace: 'batch' } },
    { ...pod(), metadata: { name: 'forced', namespace: 'batch', annotations: { 'nodemesh.dev/mode': 'sidecar' } } },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'settings', namespace: 'shop' }, data: { a: 'b' } },
  ];
  const result = injectObjects(objects, OPTIONS);
  assert.deepEqual(result.skipped, [
    { object: 'Namespace batch', reason: 'not a workload' },
    { object: 'Pod shop/web', reason: 'annotation nodemesh.dev/mode is off' },
    { object: 'Pod monitoring/node-exporter', reason: 'it uses hostNetwork (never captured)' },
    { object: 'Pod batch/cron', reason: "its namespace's label nodemesh.dev/mode is off" },
    { object: 'ConfigMap shop/settings', reason: 'not a workload' },
  ]);
  assert.deepEqual(result.injected, ['Pod batch/forced'], 'the pod annotation wins over the namespace label');
  // Skipped objects come out exactly as they went in.
  for (const i of [0, 1, 2, 3, 5]) assert.deepEqual(result.objects[i], objects[i]);
});

test('every workload kind, Lists, JSON input and multi-document YAML', () => {
  const template = { metadata: { labels: { app: 'x' } }, spec: { containers: [{ name: 'app', image: 'a' }] } };
  const kinds: Obj[] = [
    { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd' }, spec: { template } },
    { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 's' }, spec: { template } },
    { apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name: 'ds' }, spec: { template } },
    { apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: 'rs' }, spec: { template } },
    { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'j' }, spec: { template } },
    { apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name: 'cj' }, spec: { schedule: '* * * * *', jobTemplate: { spec: { template } } } },
  ];
  const list = { apiVersion: 'v1', kind: 'List', items: [...kinds, pod()] };
  const result = injectYaml(JSON.stringify(list), OPTIONS);
  assert.deepEqual(result.injected, ['Deployment d', 'StatefulSet s', 'DaemonSet ds', 'ReplicaSet rs', 'Job j', 'CronJob cj', 'Pod shop/web']);
  const [out] = docs(result.yaml);
  assert.equal(out!.kind, 'List');
  assert.equal(out!.items[5].spec.jobTemplate.spec.template.spec.containers[0].name, PROXY_CONTAINER);
  assert.equal(out!.items[6].spec.containers[0].name, PROXY_CONTAINER);
  // The input template object is not changed.
  assert.deepEqual(template.spec.containers.map((c) => c.name), ['app']);

  const multi = ['---', '# a comment only', '---', readFileSync(join(FIXTURES, 'annotated-deployment.yaml'), 'utf8'), '---', ''].join('\n');
  const many = injectYaml(multi, OPTIONS);
  assert.deepEqual(docs(many.yaml).map((o) => o.kind), ['Namespace', 'Service', 'Deployment', 'Deployment', 'Job'], 'empty documents are dropped');
  assert.throws(() => injectYaml('kind: Pod\n  bad: [', OPTIONS), { code: 'ERR_NM_CONFIG_SYNTAX' });
});

test('injectPod needs an image; podPatch is what the webhook sends', () => {
  assert.throws(() => injectPod({}, pod().spec, { image: '' }), { code: 'ERR_NM_USAGE' });
  const p = pod({}, { team: 'web' });
  const patch = podPatch(p, OPTIONS);
  assert.deepEqual(patch.map((op) => [op.op, op.path]), [['add', '/metadata/annotations'], ['add', '/spec/initContainers'], ['add', '/spec/containers']]);
  assert.deepEqual(patch[0]!.value, { team: 'web', 'nodemesh.dev/mode': 'sidecar', 'kubectl.kubernetes.io/default-container': 'web' });
  // Applying the patch gives the injected pod; patching that again gives nothing to do.
  const applied = structuredClone(p);
  applied.metadata.annotations = patch[0]!.value;
  applied.spec.initContainers = patch[1]!.value;
  applied.spec.containers = patch[2]!.value;
  assert.deepEqual(applied, injectObjects([p], OPTIONS).objects[0]);
  assert.deepEqual(podPatch(applied, OPTIONS), []);
});

test('nodemesh inject: usage errors', async () => {
  const io = { readInput: () => '', out: () => undefined, err: () => undefined };
  await assert.rejects(injectCommand([], io), { code: 'ERR_NM_USAGE' });
  await assert.rejects(injectCommand(['-f', '-', '--image-pull-policy', 'Sometimes'], io), { code: 'ERR_NM_USAGE' });
  await assert.rejects(injectCommand(['-f', 'x', '--bogus'], io), { code: 'ERR_NM_USAGE' });
  let help = '';
  assert.equal(await injectCommand(['--help'], { ...io, out: (t) => { help += t; } }), 0);
  assert.match(help, /kube-inject/);
  // --quiet: nothing on stderr.
  let err = '';
  await injectCommand(['-f', '-', '--quiet'], { readInput: () => 'kind: ConfigMap\nmetadata: {name: c}\n', out: () => undefined, err: (t) => { err += t; } });
  assert.equal(err, '');
});

test('with the mesh\'s CA: the proxy gets the pod\'s projected token for the CA and the trust bundle, and mTLS flags; injecting again changes nothing', async () => {
  const options: InjectOptions = { ...OPTIONS, identity: { caAddress: 'https://nodemesh-identity.nodemesh.svc:15012', bundleConfigMap: 'nodemesh-ca-root', trustDomain: 'example.org' } };
  const app = pod({ volumes: [{ name: 'data', emptyDir: {} }] });
  const injected = injectPod(app.metadata, app.spec, options);
  const proxy = injected.spec.containers[0];
  assert.deepEqual(proxy.args, ['sidecar', '--kube', '--pod', '$(POD_NAMESPACE)/$(POD_NAME)', '--ca-address', 'https://nodemesh-identity.nodemesh.svc:15012', '--ca-bundle-file', '/var/run/nodemesh/ca/ca.crt', '--ca-token-file', '/var/run/secrets/nodemesh/token', '--trust-domain', 'example.org']);
  assert.deepEqual(proxy.volumeMounts, [
    { name: 'nodemesh-ca-token', mountPath: '/var/run/secrets/nodemesh', readOnly: true },
    { name: 'nodemesh-ca-root', mountPath: '/var/run/nodemesh/ca', readOnly: true },
  ]);
  assert.deepEqual(injected.spec.volumes, [
    { name: 'data', emptyDir: {} },
    { name: 'nodemesh-ca-token', projected: { sources: [{ serviceAccountToken: { audience: 'nodemesh-ca', expirationSeconds: 3600, path: 'token' } }] } },
    { name: 'nodemesh-ca-root', configMap: { name: 'nodemesh-ca-root' } },
  ], 'the app\'s volumes stay; the proxy\'s are added once');
  const again = injectPod(injected.metadata, injected.spec, options);
  assert.deepEqual(again, injected);
  assert.deepEqual(podPatch({ metadata: injected.metadata, spec: injected.spec }, options), [], 'an injected pod needs no patch');
  assert.ok(podPatch(app, options).some((op) => op.path === '/spec/volumes'), 'the webhook adds the volumes');
  // Without the CA: no identity volumes, and the ones an earlier injection added go.
  const plain = injectPod(injected.metadata, injected.spec, OPTIONS);
  assert.deepEqual(plain.spec.volumes, [{ name: 'data', emptyDir: {} }]);
  assert.equal(plain.spec.containers[0].volumeMounts, undefined);
  // The flags, and their mistakes.
  let out = '';
  let err = '';
  const io = { readInput: () => 'apiVersion: v1\nkind: Pod\nmetadata: { name: p, namespace: shop }\nspec: { containers: [{ name: a, image: x }] }\n', out: (t: string) => { out += t; }, err: (t: string) => { err += t; } };
  assert.equal(await injectCommand(['-f', 'p.yaml', '--ca-address', 'https://ca.nodemesh:15012'], io), 0, err);
  assert.match(out, /--ca-bundle-file/);
  assert.match(out, /name: nodemesh-ca-root/);
  await assert.rejects(injectCommand(['-f', 'p.yaml', '--ca-address', 'unix:/tmp/ca.sock'], io), /--ca-address must be https:\/\/HOST:PORT/);
  await assert.rejects(injectCommand(['-f', 'p.yaml', '--trust-domain', 'x.org'], io), /--trust-domain is for injected proxies with the mesh's CA: give --ca-address too/);
});
