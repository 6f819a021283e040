/**
 * A consistency check of gateway-api-mesh-v1.6.3.ts against a downloaded copy of the upstream
 * module (sigs.k8s.io/gateway-api/conformance@<version>): it reads tests/mesh/*.go and returns
 * what to fix (an empty list when the translation is consistent). It checks structure, not
 * field values:
 *  - every ShortName in the Go files is in MESH_TESTS and vice versa, in the upstream order
 *    (files sorted by name, then each file's init() append order);
 *  - each test's manifests are the Go test's Manifests and exist in the module;
 *  - each test has as many cases (a weights step's warmup counts as one) as its Go test has
 *    http.ExpectedResponse literals, counted as `Request: http.Request{` fields (any spacing
 *    after the colon, as gofmt aligns them) that are not the Request embedded in an
 *    `http.ExpectedRequest{`. A test declared as `Test: Other.Test` is counted as Other.
 */
import * as fs from 'fs';
import * as path from 'path';
import { MESH_TESTS } from './gateway-api-mesh-v1.6.3';
import type { MeshConformanceTest } from './mesh-case-types';

interface GoTest {
  varName: string;
  shortName: string;
  file: string;
  manifests: string[] | undefined;
  /** The var whose Test this one reuses (`Test: Other.Test`), if any. */
  testOf: string | undefined;
  literals: number;
}

const EXPECTED_RESPONSE_REQUEST = /(?<!ExpectedRequest\{\s*)\bRequest:\s*http\.Request\{/g;

function parseGoFile(file: string, src: string): { tests: GoTest[]; appendOrder: string[] } {
  const tests: GoTest[] = [];
  const starts = [...src.matchAll(/\bvar\s+(\w+)\s*=\s*suite\.ConformanceTest\{/g)];
  starts.forEach((m, i) => {
    const block = src.slice(m.index, i + 1 < starts.length ? starts[i + 1].index : src.length);
    const shortName = /ShortName:\s*"([^"]*)"/.exec(block)?.[1] ?? '';
    const manifestsMatch = /Manifests:\s*\[\]string\{([^}]*)\}/.exec(block);
    const manifests = manifestsMatch
      ? [...manifestsMatch[1].matchAll(/"([^"]*)"/g)].map((x) => x[1])
      : undefined;
    const testOf = /\bTest:\s*(\w+)\.Test\b/.exec(block)?.[1];
    const literals = (block.match(EXPECTED_RESPONSE_REQUEST) ?? []).length;
    tests.push({ varName: m[1], shortName, file, manifests, testOf, literals });
  });
  const appendOrder: string[] = [];
  for (const a of src.matchAll(/append\(\s*MeshConformanceTests\s*,([^)]*)\)/g)) {
    appendOrder.push(...a[1].split(',').map((s) => s.trim()).filter(Boolean));
  }
  return { tests, appendOrder };
}

function caseCount(t: MeshConformanceTest): number {
  return t.steps.reduce((n, s) => n + (s.kind === 'expect' ? s.cases.length : 1), 0);
}

export function checkAgainstModule(moduleDir: string): string[] {
  const problems: string[] = [];
  const meshDir = path.join(moduleDir, 'tests', 'mesh');
  if (!fs.existsSync(meshDir)) return [`${meshDir} does not exist: pass the conformance module's root directory`];

  const files = fs.readdirSync(meshDir).filter((f) => f.endsWith('.go') && !f.endsWith('_test.go')).sort();
  const goTests = new Map<string, GoTest>(); // by var name
  const goOrder: string[] = []; // ShortNames in MeshConformanceTests order
  for (const f of files) {
    const { tests, appendOrder } = parseGoFile(f, fs.readFileSync(path.join(meshDir, f), 'utf8'));
    for (const t of tests) {
      if (!t.shortName) problems.push(`tests/mesh/${f}: var ${t.varName} has no ShortName the check can read`);
      goTests.set(t.varName, t);
    }
    for (const v of appendOrder) {
      const t = tests.find((x) => x.varName === v);
      if (t) goOrder.push(t.shortName);
      else problems.push(`tests/mesh/${f}: init() appends ${v}, which is not declared in that file (check by hand)`);
    }
    for (const t of tests) {
      if (!appendOrder.includes(t.varName)) {
        problems.push(`tests/mesh/${f}: ${t.shortName} is declared but not appended to MeshConformanceTests (check by hand)`);
      }
    }
  }
  const goByShortName = new Map([...goTests.values()].map((t) => [t.shortName, t]));

  const ours = MESH_TESTS.map((t) => t.shortName);
  for (const name of goOrder) {
    if (!ours.includes(name)) {
      problems.push(`${name} (tests/mesh/${goByShortName.get(name)?.file}) is missing from MESH_TESTS: translate it`);
    }
  }
  const seen = new Set<string>();
  for (const name of ours) {
    if (seen.has(name)) problems.push(`${name} is in MESH_TESTS more than once: remove the duplicate`);
    seen.add(name);
    if (!goByShortName.has(name)) problems.push(`${name} is in MESH_TESTS but not in the module's tests/mesh/*.go: remove or rename it`);
  }
  const common = goOrder.filter((n) => ours.includes(n));
  const oursCommon = ours.filter((n, i) => goOrder.includes(n) && ours.indexOf(n) === i);
  if (common.join(',') !== oursCommon.join(',')) {
    problems.push(`MESH_TESTS is not in upstream order; expected: ${common.join(', ')}`);
  }

  for (const t of MESH_TESTS) {
    for (const m of t.manifests) {
      if (!fs.existsSync(path.join(moduleDir, m))) problems.push(`${t.shortName}: manifest ${m} does not exist in the module`);
    }
    const go = goByShortName.get(t.shortName);
    if (!go) continue;
    if (go.manifests === undefined) {
      problems.push(`${t.shortName}: could not read Manifests in tests/mesh/${go.file} (check by hand)`);
    } else if (go.manifests.join(',') !== t.manifests.join(',')) {
      problems.push(`${t.shortName}: manifests are [${t.manifests.join(', ')}], upstream has [${go.manifests.join(', ')}]`);
    }
    let body = go;
    const chain = new Set<string>();
    while (body.testOf && !chain.has(body.varName)) {
      chain.add(body.varName);
      const next = goTests.get(body.testOf);
      if (!next) {
        problems.push(`${t.shortName}: its Test is ${body.testOf}.Test, which the check cannot find (check by hand)`);
        break;
      }
      body = next;
    }
    const want = body.literals;
    const got = caseCount(t);
    if (want !== got) {
      problems.push(
        `${t.shortName}: ${got} case(s) translated, but tests/mesh/${body.file} (${body.varName}) has ${want} ExpectedResponse literal(s): add or remove cases`,
      );
    }
  }
  return problems;
}
