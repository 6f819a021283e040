/**
 * The Gateway API mesh conformance suite (sigs.k8s.io/gateway-api/conformance, the mesh
 * tests: profiles MESH-HTTP and MESH-GRPC) on the simulator, in eBPF and iptables capture
 * modes.
 *
 * The suite's Go tests run `kubectl exec` into echo pods of a real cluster, which the
 * simulator does not have; so its tests were translated into data
 * (test/conformance/gateway-api-mesh-v1.6.3.ts) and run here with the suite's own
 * comparison rules (test/conformance/mesh-runner.ts). What is not translated is read
 * from the downloaded module itself (scripts/install-gateway-conformance.sh): the base
 * manifests (Namespaces, Deployments, Services) become the simulated topology, and each
 * test's manifests (its HTTPRoutes and GRPCRoutes) are applied as the suite applies them,
 * then removed. Before anything runs, the translation is checked against the module's Go
 * files (test names, order, manifests, number of cases), so a new suite version or a
 * missed test fails here, naming what to translate.
 *
 * Each test passes only when every one of its cases passes; the summary line lists the
 * tests passed per mode, which the README's conformance report quotes.
 */
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, SimFixture, uniqueSimName, type AgentHandle } from '../src/sim/harness';
import { checkAgainstModule } from './conformance/check-translation';
import { MESH_TESTS, SUITE } from './conformance/gateway-api-mesh-v1.6.3';
import { MeshRunner, type CaseOutcome } from './conformance/mesh-runner';
import { meshTopology, type MeshTopology } from './conformance/mesh-topology';
import { isCI, requireRoot } from './helpers/privileges';
import { debugConfig, writeSourceFile } from './helpers/source-dir';

const TEST_TIMEOUT = 180_000;

let moduleDir: string | undefined;
let moduleSkip: string | undefined;

/** The suite's module directory, from scripts/install-gateway-conformance.sh. */
function ensureModule(): void {
  if (moduleDir || moduleSkip) return;
  const r = spawnSync('bash', [join(ROOT, 'scripts', 'install-gateway-conformance.sh')], { encoding: 'utf8', timeout: 5 * 60_000 });
  if (r.status === 0) {
    moduleDir = r.stdout.trim().split('\n').pop();
    return;
  }
  const why = `scripts/install-gateway-conformance.sh exited ${r.status ?? r.signal}: ${r.stderr.trim().split('\n').slice(-3).join(' / ')}`;
  if (r.status === 3 && !isCI) moduleSkip = why;
  else throw new Error(why);
}

function needModule(t: TestContext): boolean {
  if (moduleDir) return true;
  t.skip(moduleSkip ?? 'the conformance module is unavailable');
  return false;
}

describe(`Gateway API ${SUITE.version} mesh conformance: the translation`, () => {
  before(() => ensureModule());

  test('matches the module\'s Go tests (names, order, manifests, number of cases)', (t) => {
    if (!needModule(t)) return;
    assert.deepEqual(checkAgainstModule(moduleDir!), []);
  });
});

for (const mode of ['ebpf', 'iptables'] as const) {
  describe(`Gateway API ${SUITE.version} mesh conformance, ${mode} capture`, { concurrency: false, timeout: 1_800_000 }, () => {
    let sim: SimFixture | undefined;
    let dir = '';
    let scratch = '';
    let agents: AgentHandle[] = [];
    let topology: MeshTopology;
    let runner: MeshRunner;
    const passed: string[] = [];

    before(async () => {
      ensureModule();
      if (process.getuid?.() !== 0 || !moduleDir) return;
      topology = meshTopology(moduleDir);
      dir = mkdtempSync(join(tmpdir(), `nm-gwc-${mode}-src-`));
      scratch = mkdtempSync(join(tmpdir(), `nm-gwc-${mode}-tmp-`));
      writeFileSync(join(dir, 'topology.yaml'), topology.yaml);
      sim = await new SimFixture(uniqueSimName(`gw${mode.slice(0, 2)}`), dir).up();
      await Promise.all(topology.pods.map((p) => sim!.startL7App(p.key, p.appArgs)));
      agents = await Promise.all(['node1', 'node2'].map((node) => sim!.startAgent(node, ['--capture', mode])));
      for (const p of topology.pods) await agents[p.node === 'node1' ? 0 : 1]!.waitPod(p.key, 'enrolled');
      runner = new MeshRunner(sim, topology);
    });

    after(async () => {
      if (passed.length > 0 || sim) process.stderr.write(`# gateway-api ${SUITE.version} mesh conformance (${mode}): ${passed.length}/${MESH_TESTS.length} tests passed\n`);
      await sim?.close();
      for (const d of [dir, scratch]) if (d) rmSync(d, { recursive: true, force: true });
    });

    for (const conformance of MESH_TESTS) {
      test(`${conformance.shortName}: ${conformance.description}`, { timeout: TEST_TIMEOUT }, async (t) => {
        if (!requireRoot(t) || !needModule(t)) return;
        const file = `test-${conformance.shortName}.yaml`;
        const manifests = conformance.manifests.map((m) => readFileSync(join(moduleDir!, m), 'utf8')).join('\n---\n');
        if (manifests.trim() !== '') await writeSourceFile(dir, scratch, file, manifests, agents);
        let outcomes: CaseOutcome[];
        try {
          // The routes are valid: nothing of them may be rejected.
          const rejected = (await debugConfig(agents[0]!)).rejected;
          assert.deepEqual(rejected.map((r) => r.reason), [], 'the test\'s manifests apply');
          outcomes = await runner.run(conformance);
        } finally {
          if (manifests.trim() !== '') await writeSourceFile(dir, scratch, file, undefined, agents);
        }
        const failed = outcomes.filter((o) => !o.passed);
        assert.deepEqual(failed.map((o) => `${o.case}: ${o.detail}`), [], `${failed.length} of ${outcomes.length} cases failed`);
        passed.push(conformance.shortName);
      });
    }
  });
}
