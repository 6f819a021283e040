import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAllDocuments } from 'yaml';
import { GROUPS, PROXY_BENCH_LAYOUT, benchTopology, layout, proxyBenchTopology } from './topology';

type Doc = { kind: string; metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> }; spec: Record<string, unknown>; status?: { podIP?: string } };
const docs = (text: string) => parseAllDocuments(text).map((d) => d.toJSON() as Doc);

test('bench:proxy topology: the layout\'s pods and Services; only the client carries the mode', () => {
  for (const mode of ['ambient', 'off'] as const) {
    const objects = docs(proxyBenchTopology(mode));
    assert.deepEqual(objects.map((o) => `${o.kind}/${o.metadata.name}`), ['Namespace/bench', 'Pod/c1', 'Pod/s1', 'Pod/s2', 'Service/s-local', 'Service/s-remote']);
    const c1 = objects.find((o) => o.metadata.name === 'c1')!;
    assert.equal(c1.metadata.annotations?.['nodemesh.dev/mode'], mode, 'a string, "off" included');
    assert.equal(c1.status?.podIP, PROXY_BENCH_LAYOUT.client.ip);
    for (const s of PROXY_BENCH_LAYOUT.servers) {
      const p = objects.find((o) => o.kind === 'Pod' && `bench/${o.metadata.name}` === s.pod)!;
      assert.equal(p.metadata.annotations, undefined, 'servers are not enrolled');
      assert.equal(p.spec.nodeName, s.node);
      const svc = objects.find((o) => o.kind === 'Service' && o.metadata.name === s.service)!;
      assert.deepEqual(svc.spec.selector, { app: p.metadata.labels!.app });
      assert.equal(svc.spec.clusterIP, s.clusterIP);
      assert.equal(s.url, `http://${s.clusterIP}/echo`);
    }
  }
});

test('nodemesh bench topology: every group\'s client and servers, ambient annotated only when on', () => {
  const on = docs(benchTopology(GROUPS, true));
  const off = docs(benchTopology(GROUPS, false));
  const client = (objects: Doc[]) => objects.find((o) => `bench/${o.metadata.name}` === layout('ambient').client)!;
  assert.equal(client(on).metadata.annotations?.['nodemesh.dev/mode'], 'ambient');
  assert.equal(client(off).metadata.annotations?.['nodemesh.dev/mode'], 'off');
  assert.equal(on.filter((o) => o.kind === 'Pod').length, GROUPS.length * 3);
  assert.equal(on.filter((o) => o.kind === 'Service').length, GROUPS.length * 2);
});
