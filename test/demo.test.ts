/**
 * The demo end to end (`nodemesh demo`, `bash scripts/demo.sh`): the same runDemo the
 * command runs, on a simulation of its own name, checked on the figures each step
 * measured (its DemoResult) and on what it printed, and then that nothing of it is left.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { runDemo, type DemoResult } from '../src/sim/demo';
import { benchModes } from '../src/sim/demo/bench-step';
import { uniqueSimName } from '../src/sim/harness';
import { stateDir } from '../src/sim/names';
import { requireRoot } from './helpers/privileges';

const CAPTURE = 'auto';

test('the demo: canary share, retries and an ejection, SPIFFE IDs and STRICT, a 403 with its explanation, mutual_tls in the metrics, a bench row per mode; then nothing left', { timeout: 600_000 }, async (t: TestContext) => {
  if (!requireRoot(t)) return;
  const name = uniqueSimName('demo');
  const headings: string[] = [];
  const lines: string[] = [];
  let result: DemoResult;
  try {
    result = await runDemo({ capture: CAPTURE, keep: false, name, out: { heading: (h) => headings.push(h), line: (l) => lines.push(l) } });
  } finally {
    // What it printed, for a failure's diagnosis.
    t.diagnostic([...headings, ...lines].join('\n').slice(-6000));
  }

  // A heading per step.
  for (const step of ['(a)', '(b)', '(c)', '(d)', '(e)', '(f)']) assert.ok(headings.some((h) => h.startsWith(step)), `a heading for step ${step}: ${headings.join(' | ')}`);

  // (a) The canary, measured from real calls: 10% to reviews-v2, within ±5 points.
  const canary = result.canary!;
  assert.equal(canary.failed, 0, JSON.stringify(canary));
  assert.equal((canary.versions.v1 ?? 0) + (canary.versions.v2 ?? 0), canary.requests, 'every call was answered by v1 or v2');
  assert.ok(Math.abs(canary.v2Percent - 10) <= 5, `reviews-v2's share ${canary.v2Percent}% is within 5 points of 10%`);

  // (b) Retries counted by the proxy, the same number the backends saw, and the failing endpoint ejected.
  const res = result.resilience!;
  assert.ok(res.retries >= 1, `a retry was counted: ${JSON.stringify(res)}`);
  assert.ok(res.backendFailures >= 1, 'ratings-2 failed some attempts');
  assert.equal(res.loggedCalls, res.requests, 'one access-log line per call to ratings');
  assert.equal(res.backendAttempts, res.requests + res.retries, 'every retry the proxy counted reached a backend');
  assert.deepEqual(res.ejected, ['10.244.2.22:8080'], 'outlier detection ejected ratings-2');
  assert.ok((res.ratingsStatuses['200'] ?? 0) > res.requests * 0.9, `retries and the ejection kept the frontend's calls working: ${JSON.stringify(res.ratingsStatuses)}`);

  // (c) Each workload's SPIFFE ID from its certificate; STRICT refuses plaintext from outside, the mesh flows.
  const sa: Record<string, string> = { 'shop/loadgen': 'loadgen', 'shop/frontend-1': 'frontend', 'shop/reviews-v1': 'reviews', 'shop/reviews-v2': 'reviews', 'shop/ratings-1': 'ratings', 'shop/ratings-2': 'ratings' };
  assert.deepEqual(Object.fromEntries(result.identities.map((i) => [i.pod, i.identity])), Object.fromEntries(Object.entries(sa).map(([pod, account]) => [pod, `spiffe://cluster.local/ns/shop/sa/${account}`])));
  const mtls = result.mtls!;
  assert.ok(mtls.mutualTlsStreams >= 1, 'node2 counted the frontend\'s calls as mutual_tls');
  assert.equal(mtls.plaintextFromOutside.status, undefined, `STRICT: plaintext from outside got no answer: ${JSON.stringify(mtls.plaintextFromOutside)}`);
  assert.ok(mtls.plaintextFromOutside.error, 'the connection failed');
  assert.ok(mtls.refusedCount >= 1, 'node2 counted the refusal');
  assert.equal(mtls.meshOk, mtls.meshRequests, 'the mesh\'s calls flow under STRICT');

  // (d) A 403 from the policy, and `nodemesh authz check` explaining it.
  const authz = result.authz!;
  assert.deepEqual([authz.denied.status, authz.denied.body], [403, 'RBAC: access denied']);
  assert.equal(authz.frontendOk, authz.frontendRequests, 'the frontend is still admitted');
  assert.equal(authz.check.verdict, 'deny');
  assert.match(authz.check.text, /ALLOW +AuthorizationPolicy shop\/ratings-from-frontend/);
  assert.match(authz.check.text, /verdict: +DENY/);
  assert.ok(authz.deniedCount >= 1, 'node2 counted the denial');

  // (e) istio_requests_total from the agents, and mutual_tls among the series.
  const metrics = result.metrics!;
  assert.ok(metrics.requests.some((m) => m.labels.source_principal === 'spiffe://cluster.local/ns/shop/sa/frontend' && m.labels.destination_workload === 'reviews-v2' && m.value >= (canary.versions.v2 ?? 1)), 'the canary\'s calls to reviews-v2 are counted');
  assert.ok(metrics.mutualTls.some((m) => m.value > 0 && m.labels.source_principal === 'spiffe://cluster.local/ns/shop/sa/frontend'), `a mutual_tls series: ${JSON.stringify(metrics.mutualTls.slice(0, 3))}`);
  assert.ok(lines.some((l) => l.includes('connection_security_policy="mutual_tls"')), 'printed');

  // (f) A bench row per mode, with the added latency and the proxies' CPU.
  const bench = result.bench!;
  assert.deepEqual(bench.skipped, [], 'no mode skipped');
  for (const mode of benchModes(CAPTURE)) {
    const row = bench.rows.find((r) => r.mode === mode);
    assert.ok(row && row.requests > 0, `a row for ${mode}: ${JSON.stringify(bench.rows)}`);
    if (mode !== 'direct') {
      assert.notEqual(row.addedP50Ms, null, `${mode} has an added latency`);
      assert.ok(row.proxyCpuSPer1000 !== null && row.proxyCpuSPer1000 > 0, `${mode} has its proxies' CPU`);
    }
  }

  // Nothing left: no state, no namespace of the simulation.
  assert.equal(existsSync(stateDir(name)), false, `the state directory ${stateDir(name)} is gone`);
  const netns = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  assert.doesNotMatch(netns, new RegExp(`nmsim-${name}-`), 'no namespace of the demo is left');
});
