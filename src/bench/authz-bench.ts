/**
 * Micro-benchmark of the authorization evaluator (not a test):
 *
 *   npm run bench:authz [-- iterations]     (after `npx tsc -p .`)
 *
 * Times evaluate() for one HTTP request against one ALLOW policy of 1, 10 and 100 rules,
 * each rule a source principal, a path prefix and methods, where only the last rule
 * matches: the evaluator walks every rule, the worst case for that many. Prints ns per
 * evaluate() (best and median of 5 rounds).
 */
import type { OtherObject } from '../config/objects';
import { evaluate } from '../policy/server/authorization/evaluate';
import { parseIstioAuthorizationPolicies } from '../policy/server/authorization/parse-istio-authorization-policy';
import { AuthorizationPolicies } from '../policy/server/authorization/policy-set';
import type { AuthzRequest } from '../policy/server/authorization/request';

function policyWithRules(count: number): AuthorizationPolicies {
  const rules = Array.from({ length: count }, (_, i) => ({
    from: [{ source: { principals: [`cluster.local/ns/demo/sa/client-${i}`] } }],
    to: [{ operation: { methods: ['GET', 'HEAD'], paths: [`/api/v${i}/*`] } }],
  }));
  const object = { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: `rules-${count}`, namespace: 'demo' }, spec: { selector: { matchLabels: { app: 'api' } }, rules } };
  const other: OtherObject = { file: 'bench', apiVersion: object.apiVersion, kind: object.kind, namespace: 'demo', name: object.metadata.name, object };
  const { policies, rejected } = parseIstioAuthorizationPolicies([other]);
  if (rejected.length > 0) throw new Error(rejected.map((r) => r.reason).join('\n'));
  return new AuthorizationPolicies(policies);
}

function requestFor(last: number): AuthzRequest {
  return {
    destination: { namespace: 'demo', labels: { app: 'api', version: 'v1' }, serviceAccount: 'api', podName: 'api-7d9f8b6c5-x2k4q' },
    port: 8080,
    sourcePrincipal: `spiffe://cluster.local/ns/demo/sa/client-${last}`,
    sourceIp: '10.244.1.10',
    http: { method: 'GET', path: `/api/v${last}/items?page=2`, host: 'api.demo.svc.cluster.local:8080', headers: { 'user-agent': 'bench' } },
  };
}

function time(iterations: number, fn: () => void, rounds = 5): { best: number; median: number } {
  // Warm up (JIT), then the best and the median of a few rounds: other processes on the
  // machine only ever make a round slower.
  for (let i = 0; i < Math.min(iterations, 50_000); i++) fn();
  const results: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) fn();
    results.push(Number(process.hrtime.bigint() - start) / iterations);
  }
  results.sort((a, b) => a - b);
  return { best: results[0]!, median: results[Math.floor(results.length / 2)]! };
}

function main(): void {
  const iterations = Number(process.argv[2] ?? 200_000);
  if (!(Number.isInteger(iterations) && iterations > 0)) throw new Error(`iterations must be a positive integer, got ${process.argv[2]}`);
  console.log(`evaluate(): one ALLOW policy, the request matches its last rule; ${iterations} iterations x 5 rounds`);
  for (const count of [1, 10, 100]) {
    const policies = policyWithRules(count);
    const request = requestFor(count - 1);
    const check = evaluate(policies, request);
    if (check.verdict !== 'allow' || check.decidedBy?.ruleIndex !== count - 1) throw new Error(`bench set-up: expected rule ${count - 1} to allow, got ${check.reason}`);
    let sink = 0;
    const { best, median } = time(iterations, () => {
      sink += evaluate(policies, request).audited.length;
    });
    console.log(`${String(count).padStart(3)} rules: ${best.toFixed(0).padStart(6)} ns/op best, ${median.toFixed(0).padStart(6)} ns/op median`);
    if (sink !== 0) console.log('(audited entries: the set-up has no AUDIT policy)');
  }
}

main();
