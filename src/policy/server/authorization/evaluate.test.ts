import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MESH_ROOT_NAMESPACE } from '../peer-authentication';
import { evaluate, needsL7 } from './evaluate';
import { istioPolicy, meshPolicy, parsePolicies, request } from './testing';

function policies(text: string, settings: { rootNamespace?: string; trustDomain?: string } = {}) {
  const { set, rejected } = parsePolicies(text, settings);
  assert.deepEqual(rejected.map((r) => r.reason), []);
  return set;
}

const verdict = (text: string, r = request()) => evaluate(policies(text), r).verdict;

test('with no policy everything is allowed', () => {
  const d = evaluate(policies(''), request());
  assert.deepEqual(d, { verdict: 'allow', audited: [], reason: 'no authorization policy applies to the workload' });
});

test('DENY wins over ALLOW, and the decision names the policy and rule', () => {
  const set = policies(
    istioPolicy('demo', 'allow-all', '{ rules: [{}] }') +
      istioPolicy('demo', 'deny-web', '{ action: DENY, rules: [{ from: [{ source: { namespaces: [other] } }] }, { from: [{ source: { principals: ["cluster.local/ns/demo/sa/web"] } }] }] }'),
  );
  const d = evaluate(set, request());
  assert.equal(d.verdict, 'deny');
  assert.deepEqual(d.decidedBy, { policy: 'demo/deny-web', kind: 'AuthorizationPolicy', ruleIndex: 1, action: 'DENY' });
  assert.match(d.reason, /denied by AuthorizationPolicy demo\/deny-web \(DENY\), rule 1/);
  const other = evaluate(set, request({ sourcePrincipal: 'spiffe://cluster.local/ns/demo/sa/db' }));
  assert.equal(other.verdict, 'allow');
  assert.deepEqual(other.decidedBy, { policy: 'demo/allow-all', kind: 'AuthorizationPolicy', ruleIndex: 0, action: 'ALLOW' });
});

test('AUDIT policies are recorded and never decide', () => {
  const set = policies(istioPolicy('demo', 'audit', '{ action: AUDIT, rules: [{ to: [{ operation: { paths: ["/admin*"] } }] }] }'));
  const d = evaluate(set, request({ http: { path: '/admin/users' } }));
  assert.equal(d.verdict, 'allow', 'an AUDIT policy alone is not an ALLOW policy: nothing is denied');
  assert.deepEqual(d.audited, [{ policy: 'demo/audit', kind: 'AuthorizationPolicy', ruleIndex: 0, action: 'AUDIT' }]);
  assert.deepEqual(evaluate(set, request({ http: { path: '/public' } })).audited, []);
  const withDeny = policies(istioPolicy('demo', 'audit', '{ action: AUDIT, rules: [{}] }') + istioPolicy('demo', 'deny', '{ action: DENY, rules: [{}] }'));
  const denied = evaluate(withDeny, request());
  assert.equal(denied.verdict, 'deny');
  assert.equal(denied.audited.length, 1, 'audited even when denied');
});

test('an ALLOW policy that matches nothing denies: spec {}, rules [], and rules that do not match', () => {
  assert.equal(verdict(istioPolicy('demo', 'nothing', '{}')), 'deny');
  assert.equal(verdict(istioPolicy('demo', 'nothing', '{ rules: [] }')), 'deny');
  assert.equal(verdict(istioPolicy('demo', 'nothing', '{ selector: { matchLabels: { app: api } } }')), 'deny');
  const d = evaluate(policies(istioPolicy('demo', 'only-db', '{ rules: [{ from: [{ source: { principals: ["cluster.local/ns/demo/sa/db"] } }] }] }')), request());
  assert.equal(d.verdict, 'deny');
  assert.equal(d.decidedBy, undefined);
  assert.match(d.reason, /no rule of the ALLOW policies that apply \(AuthorizationPolicy demo\/only-db\) matched/);
  assert.equal(verdict(istioPolicy('demo', 'all', '{ rules: [{}] }')), 'allow', 'a rule {} matches everything');
  assert.equal(verdict(istioPolicy('demo', 'deny-nothing', '{ action: DENY }')), 'allow', 'a DENY policy without rules does nothing');
});

test('scope: selector, namespace-wide, mesh-wide from the root namespace (whose selector reaches every namespace), targetRefs to a Service', () => {
  assert.equal(verdict(istioPolicy('demo', 'web-only', '{ selector: { matchLabels: { app: web } } }')), 'allow', 'selects another workload');
  assert.equal(verdict(istioPolicy('other', 'ns', '{}')), 'allow', 'another namespace');
  assert.equal(verdict(istioPolicy('demo', 'ns', '{}')), 'deny', 'namespace-wide');
  assert.equal(verdict(istioPolicy(MESH_ROOT_NAMESPACE, 'mesh', '{}')), 'deny', 'mesh-wide');
  assert.equal(verdict(istioPolicy(MESH_ROOT_NAMESPACE, 'mesh-api', '{ selector: { matchLabels: { app: api } } }')), 'deny', 'a root-namespace selector selects in every namespace');
  assert.equal(verdict(istioPolicy('istio-system', 'mesh', '{}')), 'allow', 'not the root namespace by default');
  assert.equal(evaluate(policies(istioPolicy('istio-system', 'mesh', '{}'), { rootNamespace: 'istio-system' }), request()).verdict, 'deny');
  assert.equal(evaluate(policies(istioPolicy('istio-system', 'mesh', '{}')).withMeshSettings({ rootNamespace: 'istio-system' }), request()).verdict, 'deny');
  const svc = istioPolicy('demo', 'svc', '{ targetRefs: [{ group: "", kind: Service, name: api }] }');
  assert.equal(verdict(svc), 'allow', 'a pod no Service of that name selects');
  const selected = request();
  selected.destination = { ...selected.destination, serviceNames: new Set(['api']) };
  assert.equal(verdict(svc, selected), 'deny');
  assert.equal(verdict(meshPolicy(MESH_ROOT_NAMESPACE, 'gep', '{ targetRefs: [{ group: "", kind: Pod, selector: {} }], action: ALLOW, enforcementLevel: Network }')), 'allow', 'a GEP-3779 policy never leaves its namespace');
});

test('principals match the SPIFFE ID without spiffe://; plaintext has no principal; namespaces come from the principal', () => {
  const byPrincipal = istioPolicy('demo', 'p', '{ rules: [{ from: [{ source: { principals: ["cluster.local/ns/demo/sa/web"] } }] }] }');
  assert.equal(verdict(byPrincipal), 'allow');
  assert.equal(verdict(istioPolicy('demo', 'p', '{ rules: [{ from: [{ source: { principals: ["spiffe://cluster.local/ns/demo/sa/web"] } }] }] }')), 'deny', 'the spiffe:// form is not what Istio matches');
  assert.equal(verdict(byPrincipal, request({ sourcePrincipal: undefined })), 'deny');
  const anyPeer = istioPolicy('demo', 'p', '{ rules: [{ from: [{ source: { principals: ["*"] } }] }] }');
  assert.equal(verdict(anyPeer), 'allow');
  assert.equal(verdict(anyPeer, request({ sourcePrincipal: undefined })), 'deny', 'presence needs a principal');
  const denyPlaintext = istioPolicy('demo', 'd', '{ action: DENY, rules: [{ from: [{ source: { notPrincipals: ["*"] } }] }] }');
  assert.equal(verdict(denyPlaintext, request({ sourcePrincipal: undefined })), 'deny', 'notPrincipals ["*"] catches plaintext');
  assert.equal(verdict(denyPlaintext), 'allow');
  const ns = istioPolicy('demo', 'n', '{ rules: [{ from: [{ source: { namespaces: ["dem*"], notNamespaces: [demo-test] } }] }] }');
  assert.equal(verdict(ns), 'allow');
  assert.equal(verdict(ns, request({ sourcePrincipal: 'spiffe://cluster.local/ns/demo-test/sa/web' })), 'deny');
  assert.equal(verdict(ns, request({ sourcePrincipal: 'spiffe://cluster.local/ns/prod/sa/web' })), 'deny');
  const accounts = istioPolicy('demo', 's', '{ rules: [{ from: [{ source: { serviceAccounts: [web, "other/batch"] } }] }] }');
  assert.equal(verdict(accounts), 'allow', '"web" is of the policy\'s namespace');
  assert.equal(verdict(accounts, request({ sourcePrincipal: 'spiffe://cluster.local/ns/other/sa/batch' })), 'allow');
  assert.equal(verdict(accounts, request({ sourcePrincipal: 'spiffe://cluster.local/ns/other/sa/web' })), 'deny');
  assert.equal(verdict(accounts, request({ sourcePrincipal: 'spiffe://evil.example/ns/demo/sa/web' })), 'deny', 'another trust domain');
});

test('paths, hosts and headers: exact, prefix, suffix and presence; the query is ignored; hosts ignore case and port', () => {
  const paths = istioPolicy('demo', 'p', '{ rules: [{ to: [{ operation: { paths: ["/exact", "/api/*", "*.css"] } }] }] }');
  for (const [path, expected] of [
    ['/exact', 'allow'],
    ['/exact?x=1', 'allow'],
    ['/exact/', 'deny'],
    ['/api/v1', 'allow'],
    ['/api', 'deny'],
    ['/site/main.css', 'allow'],
    ['/main.css.map', 'deny'],
  ] as const) {
    assert.equal(verdict(paths, request({ http: { path } })), expected, path);
  }
  const hosts = istioPolicy('demo', 'h', '{ rules: [{ to: [{ operation: { hosts: ["Api.Demo", "*.example.com"], notHosts: ["admin.example.com"] } }] }] }');
  for (const [host, expected] of [
    ['api.demo', 'allow'],
    ['API.DEMO:8080', 'allow'],
    ['shop.example.com', 'allow'],
    ['shop.example.com:443', 'allow'],
    ['admin.example.com', 'deny'],
    ['Admin.Example.Com:80', 'deny'],
    ['api.demo.evil', 'deny'],
  ] as const) {
    assert.equal(verdict(hosts, request({ http: { host } })), expected, host);
  }
  assert.equal(verdict(istioPolicy('demo', 'h', '{ rules: [{ to: [{ operation: { hosts: ["api.demo:8080"] } }] }] }'), request({ http: { host: 'api.demo:9090' } })), 'deny', 'a pattern with a port compares the whole authority');
  const headers = istioPolicy('demo', 'w', '{ rules: [{ when: [{ key: "request.headers[X-Team]", values: ["blue*"] }, { key: "request.headers[x-token]", values: ["*"] }, { key: "request.headers[x-env]", notValues: ["*-prod"] }] }] }');
  assert.equal(verdict(headers, request({ http: { headers: { 'x-team': 'blue-1', 'x-token': 't' } } })), 'allow');
  assert.equal(verdict(headers, request({ http: { headers: { 'x-team': 'blue-1' } } })), 'deny', 'presence needs the header');
  assert.equal(verdict(headers, request({ http: { headers: { 'x-team': 'blue-1', 'x-token': '' } } })), 'deny', 'presence needs a value');
  assert.equal(verdict(headers, request({ http: { headers: { 'x-team': 'red', 'x-token': 't' } } })), 'deny');
  assert.equal(verdict(headers, request({ http: { headers: { 'x-team': 'blue', 'x-token': 't', 'x-env': 'eu-prod' } } })), 'deny', 'notValues');
  assert.equal(verdict(headers, request({ http: { headers: { 'x-team': ['blue', 'red'], 'x-token': 't' } } })), 'allow', 'several values are joined with ","');
});

test('methods and ports with their not-forms', () => {
  const set = istioPolicy('demo', 'm', '{ rules: [{ to: [{ operation: { notMethods: [DELETE], ports: ["8080", "9090"], notPorts: ["9090"] } }] }] }');
  assert.equal(verdict(set, request({ http: { method: 'GET' } })), 'allow');
  assert.equal(verdict(set, request({ http: { method: 'DELETE' } })), 'deny');
  assert.equal(verdict(set, request({ port: 9090, http: { method: 'GET' } })), 'deny');
  assert.equal(verdict(set, request({ port: 7070, http: { method: 'GET' } })), 'deny');
  assert.equal(verdict(istioPolicy('demo', 'p', '{ rules: [{ when: [{ key: destination.port, values: ["8080"] }] }] }')), 'allow');
  assert.equal(verdict(istioPolicy('demo', 'p', '{ rules: [{ when: [{ key: destination.port, notValues: ["8080"] }] }] }')), 'deny');
});

test('ipBlocks and notIpBlocks, IPv4 and IPv6, CIDRs and single addresses; remote.ip and destination.ip', () => {
  const v4 = istioPolicy('demo', 'ip', '{ rules: [{ from: [{ source: { ipBlocks: ["10.244.0.0/16", "192.0.2.7"], notIpBlocks: ["10.244.9.0/24"] } }] }] }');
  assert.equal(verdict(v4), 'allow');
  assert.equal(verdict(v4, request({ sourceIp: '192.0.2.7' })), 'allow');
  assert.equal(verdict(v4, request({ sourceIp: '192.0.2.8' })), 'deny');
  assert.equal(verdict(v4, request({ sourceIp: '10.244.9.3' })), 'deny');
  assert.equal(verdict(v4, request({ sourceIp: '::ffff:10.244.1.10' })), 'allow', 'an IPv4-mapped address is the IPv4 address');
  const v6 = istioPolicy('demo', 'ip', '{ rules: [{ from: [{ source: { ipBlocks: ["fd00:244::/32"] } }] }] }');
  assert.equal(verdict(v6, request({ sourceIp: 'fd00:244:1::a' })), 'allow');
  assert.equal(verdict(v6, request({ sourceIp: 'fd00:245::a' })), 'deny');
  assert.equal(verdict(v6), 'deny', 'an IPv4 source is in no IPv6 block');
  const deny = istioPolicy('demo', 'd', '{ action: DENY, rules: [{ when: [{ key: remote.ip, values: ["10.244.1.0/24"] }, { key: destination.ip, notValues: ["10.244.2.5"] }] }] }');
  assert.equal(verdict(deny, request({ destinationIp: '10.244.2.6' })), 'deny');
  assert.equal(verdict(deny, request({ destinationIp: '10.244.2.5' })), 'allow');
});

test('L7 rules at L4: an ALLOW rule cannot match (deny), a DENY rule fails closed on what else it names', () => {
  const allowGet = policies(istioPolicy('demo', 'get', '{ rules: [{ to: [{ operation: { methods: [GET] } }] }] }'));
  assert.equal(evaluate(allowGet, request({ http: { method: 'GET' } })).verdict, 'allow');
  const l4 = evaluate(allowGet, request());
  assert.equal(l4.verdict, 'deny');
  assert.match(l4.reason, /cannot match a connection that is not parsed as HTTP/);
  const denyPost = policies(istioPolicy('demo', 'no-post', '{ action: DENY, rules: [{ to: [{ operation: { methods: [POST], ports: ["8080"] } }] }] }'));
  assert.equal(evaluate(denyPost, request({ http: { method: 'GET' } })).verdict, 'allow');
  const closed = evaluate(denyPost, request());
  assert.equal(closed.verdict, 'deny');
  assert.deepEqual(closed.decidedBy, { policy: 'demo/no-post', kind: 'AuthorizationPolicy', ruleIndex: 0, action: 'DENY', l7Unknown: true });
  assert.match(closed.reason, /fails closed/);
  assert.equal(evaluate(denyPost, request({ port: 9090 })).verdict, 'allow', 'its ports still scope it');
  const notForm = policies(istioPolicy('demo', 'd', '{ action: DENY, rules: [{ to: [{ operation: { notPaths: ["/healthz"] } }] }] }'));
  assert.equal(evaluate(notForm, request()).verdict, 'deny', 'a not-form is unknown at L4 too');
  const header = policies(istioPolicy('demo', 'd', '{ action: DENY, rules: [{ when: [{ key: "request.headers[x-debug]", values: ["*"] }] }] }'));
  assert.equal(evaluate(header, request()).verdict, 'deny');
  assert.equal(evaluate(header, request({ http: {} })).verdict, 'allow');
});

test('needsL7: a rule with HTTP clauses that may apply on the port', () => {
  const set = policies(
    istioPolicy('demo', 'paths', '{ rules: [{ to: [{ operation: { paths: ["/a"], ports: ["8080"] } }] }] }') +
      istioPolicy('demo', 'l4', '{ rules: [{ from: [{ source: { namespaces: [demo] } }] }] }') +
      istioPolicy('other', 'any', '{ action: DENY, rules: [{ to: [{ operation: { methods: [POST] } }] }] }'),
  );
  const api = request().destination;
  assert.equal(needsL7(set, api, 8080), true);
  assert.equal(needsL7(set, api, 9090), false, 'the HTTP rule is confined to 8080');
  assert.equal(needsL7(set, { ...api, namespace: 'other' }, 1), true);
  assert.equal(needsL7(set, { ...api, namespace: 'third' }, 8080), false);
});

test('GEP-3779: an ALLOW policy admits service account A (and a SPIFFE ID), denies B; ports narrow a rule', () => {
  const set = policies(
    meshPolicy(
      'demo',
      'api-from-web',
      `{ targetRefs: [{ group: "", kind: Pod, selector: { matchLabels: { app: api } } }], action: ALLOW, enforcementLevel: Network,
         rules: [{ sources: [{ type: ServiceAccount, serviceAccount: { name: web } }, { type: SPIFFE, spiffe: "spiffe://cluster.local/ns/jobs/sa/batch" }] },
                 { sources: [{ type: ServiceAccount, serviceAccount: { namespace: monitoring, name: "*" } }], networkAttributes: { ports: [9090] } }] }`,
    ),
  );
  const a = evaluate(set, request());
  assert.equal(a.verdict, 'allow');
  assert.deepEqual(a.decidedBy, { policy: 'demo/api-from-web', kind: 'XAuthorizationPolicy', ruleIndex: 0, action: 'ALLOW' });
  assert.equal(evaluate(set, request({ sourcePrincipal: 'spiffe://cluster.local/ns/demo/sa/b' })).verdict, 'deny');
  assert.equal(evaluate(set, request({ sourcePrincipal: undefined })).verdict, 'deny');
  assert.equal(evaluate(set, request({ sourcePrincipal: 'spiffe://cluster.local/ns/jobs/sa/batch' })).verdict, 'allow');
  assert.equal(evaluate(set, request({ sourcePrincipal: 'spiffe://cluster.local/ns/monitoring/sa/prom', port: 9090 })).verdict, 'allow');
  assert.equal(evaluate(set, request({ sourcePrincipal: 'spiffe://cluster.local/ns/monitoring/sa/prom', port: 8080 })).verdict, 'deny');
  assert.equal(evaluate(set, request({ destination: { ...request().destination, labels: { app: 'db' } } })).verdict, 'allow', 'not targeted');
  assert.equal(evaluate(set.withMeshSettings({ trustDomain: 'example.org' }), request()).verdict, 'deny', 'a ServiceAccount source is of the mesh\'s trust domain');
  const none = policies(meshPolicy('demo', 'none', '{ targetRefs: [{ group: "", kind: Pod, selector: {} }], action: ALLOW, enforcementLevel: Network, rules: [{ sources: [] }] }'));
  assert.equal(evaluate(none, request()).verdict, 'deny', 'sources: [] matches no source');
  const any = policies(meshPolicy('demo', 'any', '{ targetRefs: [{ group: "", kind: Pod, selector: {} }], action: ALLOW, enforcementLevel: Network, rules: [{}] }'));
  assert.equal(evaluate(any, request({ sourcePrincipal: undefined })).verdict, 'allow', 'omitted sources match any source');
});

test('both APIs together: a GEP ALLOW and an Istio DENY on the same workload', () => {
  const set = policies(
    meshPolicy('demo', 'gep', '{ targetRefs: [{ group: "", kind: Pod, selector: { matchExpressions: [{ key: app, operator: In, values: [api, db] }] } }], action: ALLOW, enforcementLevel: Network, rules: [{ sources: [{ type: ServiceAccount, serviceAccount: { name: "*" } }] }] }') +
      istioPolicy('demo', 'no-admin', '{ action: DENY, rules: [{ to: [{ operation: { paths: ["/admin*"] } }] }] }'),
  );
  assert.equal(evaluate(set, request({ http: { path: '/' } })).verdict, 'allow');
  assert.equal(evaluate(set, request({ http: { path: '/admin' } })).decidedBy?.policy, 'demo/no-admin');
  assert.equal(evaluate(set, request({ sourcePrincipal: 'spiffe://cluster.local/ns/other/sa/web', http: { path: '/' } })).verdict, 'deny');
});

test('paths are matched as the server resolves them: no dot segment or escape gets around a rule', () => {
  const deny = istioPolicy('demo', 'no-admin', '{ action: DENY, rules: [{ to: [{ operation: { paths: ["/admin*"] } }] }] }');
  for (const path of ['/admin', '/public/../admin', '/./admin/x', '/%61dmin', '/public/%2e%2e/admin?x=1']) {
    assert.equal(verdict(deny, request({ http: { path } })), 'deny', path);
  }
  assert.equal(verdict(deny, request({ http: { path: '/public/admin' } })), 'allow');
  const allow = istioPolicy('demo', 'public-only', '{ rules: [{ to: [{ operation: { paths: ["/public/*"] } }] }] }');
  assert.equal(verdict(allow, request({ http: { path: '/public/a' } })), 'allow');
  assert.equal(verdict(allow, request({ http: { path: '/public/../admin' } })), 'deny', 'an ALLOW on /public/* does not admit what resolves outside it');
});
