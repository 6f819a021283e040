import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseK8sYaml } from '../config/k8s-yaml';
import { convertObjects } from '../config/objects';
import { serviceKey } from '../mesh/model';
import { compileRoutes, type CompileResult } from './compile';
import type { ServiceRoutes } from './route-table';

const SERVICES = `
apiVersion: v1
kind: Service
metadata: { name: greeter, namespace: demo }
spec: { clusterIP: 10.96.1.10, ports: [{ name: grpc, port: 9090 }] }
---
apiVersion: v1
kind: Service
metadata: { name: greeter-v2, namespace: demo }
spec: { clusterIP: 10.96.1.11, ports: [{ name: grpc, port: 9090 }] }
`;

function compile(routes: string): CompileResult {
  const parsed = parseK8sYaml(`${SERVICES}\n---\n${routes}`, 'grpc.yaml');
  const converted = convertObjects(parsed.objects);
  assert.deepEqual(converted.rejected, []);
  return compileRoutes(converted.others, new Map(converted.services.map((s) => [serviceKey(s), s])));
}

function grpcRoute(name: string, rules: string, created?: string): string {
  return `
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: ${name}
  namespace: demo
${created ? `  creationTimestamp: "${created}"\n` : ''}spec:
  parentRefs: [{ group: "", kind: Service, name: greeter, port: 9090 }]
  rules:
${rules}
---`;
}

function routes(out: CompileResult): ServiceRoutes {
  assert.deepEqual(out.rejected, [], out.rejected.map((r) => r.reason).join('\n'));
  const r = out.table.forService('demo/greeter', 9090, 'grpc');
  assert.ok(r);
  return r;
}

function call(r: ServiceRoutes, path: string, headers: Record<string, string> = {}): string {
  const m = r.match({ method: 'POST', path, headers: { 'content-type': 'application/grpc', ...headers } });
  return m ? `${m.routeKey} rules[${m.ruleIndex}]` : 'none';
}

test('GRPCRoute Exact method matches: service and method, service only, method only', () => {
  const r = routes(
    compile(
      grpcRoute(
        'g',
        `  - matches: [{ method: { service: helloworld.Greeter, method: SayHello } }]
  - matches: [{ method: { service: helloworld.Greeter } }]
  - matches: [{ method: { method: Check } }]`,
      ),
    ),
  );
  assert.equal(call(r, '/helloworld.Greeter/SayHello'), 'GRPCRoute demo/g rules[0]');
  assert.equal(call(r, '/helloworld.Greeter/SayBye'), 'GRPCRoute demo/g rules[1]');
  assert.equal(call(r, '/grpc.health.v1.Health/Check'), 'GRPCRoute demo/g rules[2]');
  assert.equal(call(r, '/helloworld.greeter/SayHello'), 'none', 'case-sensitive');
  assert.equal(call(r, '/other.Svc/Other'), 'none');
  assert.equal(call(r, '/helloworld.Greeter'), 'none', 'not a method path');
  assert.equal(call(r, '/helloworld.Greeter/SayHello/extra'), 'none');
});

test('GRPCRoute RegularExpression method matches and header matches', () => {
  const r = routes(
    compile(
      grpcRoute(
        'g',
        `  - matches: [{ method: { type: RegularExpression, service: 'helloworld\\..*', method: 'Say.*' }, headers: [{ name: x-tenant, value: a }] }]
  - matches: [{ method: { type: RegularExpression, method: 'Say.*' } }]
  - matches: [{ headers: [{ type: RegularExpression, name: X-Tenant, value: 'b|c' }] }]`,
      ),
    ),
  );
  assert.equal(call(r, '/helloworld.Greeter/SayHello', { 'x-tenant': 'a' }), 'GRPCRoute demo/g rules[0]');
  assert.equal(call(r, '/helloworld.Greeter/SayHello'), 'GRPCRoute demo/g rules[1]');
  assert.equal(call(r, '/other.Svc/SayHello', { 'x-tenant': 'a' }), 'GRPCRoute demo/g rules[1]');
  assert.equal(call(r, '/other.Svc/Hello', { 'x-tenant': 'c' }), 'GRPCRoute demo/g rules[2]');
  assert.equal(call(r, '/other.Svc/Hello', { 'x-tenant': 'bc' }), 'none', 'whole value');
  assert.equal(call(r, '/other.Svc/XSayHello'), 'none', 'whole method name');
});

test('GRPCRoute precedence: service characters, then method characters, then headers, then age', () => {
  const out = compile(
    grpcRoute(
      'old',
      `  - matches: [{ headers: [{ name: a, value: '1' }, { name: b, value: '1' }] }]
  - matches: [{ method: { method: SayHello }, headers: [{ name: a, value: '1' }] }]`,
      '2020-01-01T00:00:00Z',
    ) +
      grpcRoute(
        'new',
        `  - matches: [{ method: { service: helloworld.Greeter } }]
  - matches: [{ method: { service: helloworld.Greeter, method: SayHello } }]
  - matches: [{ method: { method: SayHello }, headers: [{ name: a, value: '1' }] }]
  - matches: [{ method: { method: SayHello }, headers: [{ name: a, value: '1' }, { name: b, value: '1' }] }]`,
        '2024-01-01T00:00:00Z',
      ),
  );
  const r = routes(out);
  const ab = { a: '1', b: '1' };
  assert.equal(call(r, '/helloworld.Greeter/SayHello', ab), 'GRPCRoute demo/new rules[1]', 'exact service and method');
  assert.equal(call(r, '/helloworld.Greeter/Other', ab), 'GRPCRoute demo/new rules[0]', 'service beats headers');
  assert.equal(call(r, '/x.Y/SayHello', ab), 'GRPCRoute demo/new rules[3]', 'method with more headers');
  assert.equal(call(r, '/x.Y/SayHello', { a: '1' }), 'GRPCRoute demo/old rules[1]', 'same specificity: the older route');
  assert.equal(call(r, '/x.Y/Other', ab), 'GRPCRoute demo/old rules[0]');
  assert.equal(call(r, '/x.Y/Other'), 'none');
});

test('a GRPCRoute rule without matches matches every call; backends and filters are kept', () => {
  const out = compile(
    grpcRoute(
      'g',
      `  - filters: [{ type: RequestHeaderModifier, requestHeaderModifier: { set: [{ name: x-route, value: g }] } }]
    backendRefs: [{ name: greeter, port: 9090, weight: 3 }, { name: greeter-v2, port: 9090, weight: 1 }]`,
    ),
  );
  const m = routes(out).match({ method: 'POST', path: '/any.Svc/Any', headers: {} })!;
  assert.deepEqual(
    m.backends.map((b) => [b.serviceKey, b.weight]),
    [
      ['demo/greeter', 3],
      ['demo/greeter-v2', 1],
    ],
  );
  assert.deepEqual(m.requestHeaderModifier?.set, [{ name: 'x-route', value: 'g' }]);
  assert.deepEqual(m.timeouts, {});
  assert.equal(out.table.forService('demo/greeter', 9090, 'http'), undefined, 'GRPCRoutes are only for gRPC');
});

test('GRPCRoute rejections and warnings', () => {
  const bad = (rules: string) => {
    const out = compile(grpcRoute('bad', rules));
    assert.equal(out.rejected.length, 1);
    assert.equal(out.rejected[0]!.object, 'GRPCRoute demo/bad');
    return out.rejected[0]!;
  };
  let r = bad(`  - matches: [{ method: { type: Exact } }]`);
  assert.equal(r.path, 'spec.rules[0].matches[0].method');
  assert.match(r.reason, /set service, method or both/);
  r = bad(`  - matches: [{ method: { service: 'hello world' } }]`);
  assert.equal(r.path, 'spec.rules[0].matches[0].method.service');
  assert.match(r.reason, /not a gRPC service name/);
  r = bad(`  - matches: [{ method: { method: 'Say.Hello' } }]`);
  assert.equal(r.path, 'spec.rules[0].matches[0].method.method');
  r = bad(`  - matches: [{ method: { type: RegularExpression, service: '(' } }]`);
  assert.equal(r.path, 'spec.rules[0].matches[0].method.service');
  assert.match(r.reason, /not a valid regular expression/);
  r = bad(`  - filters: [{ type: URLRewrite, urlRewrite: { hostname: x } }]`);
  assert.equal(r.path, 'spec.rules[0].filters[0].type');
  assert.match(r.reason, /does not support URLRewrite filters on a GRPCRoute/);
  r = bad(`  - backendRefs: [{ name: greeter, port: 9090, weight: -2 }]`);
  assert.equal(r.path, 'spec.rules[0].backendRefs[0].weight');

  const warned = compile(grpcRoute('g', `  - timeouts: { request: 1s }\n    backendRefs: [{ name: greeter, port: 9090 }]`));
  assert.deepEqual(warned.rejected, []);
  assert.deepEqual(warned.warnings.map((w) => w.path), ['spec.rules[0].timeouts']);
  assert.match(warned.warnings[0]!.reason, /GRPCRoute rules have no timeouts field/);
});
