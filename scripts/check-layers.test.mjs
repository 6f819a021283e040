// Unit tests of scripts/check-layers.mjs on small fixture trees (a temporary ARCHITECTURE.md
// and src/), run by `node scripts/run-tests.js unit` with the compiled unit tests.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseLayerTable, rowOf, importsOf, findCycles, run } from './check-layers.mjs';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'check-layers.mjs');

const TABLE = `# fixture

## Layers

A file may import from its own row's path, or from a row of a strictly lower layer.

| layer | path | what |
|---|---|---|
| 0 | \`errors.ts\`, \`log.ts\` | errors and logs |
| 1 | \`util/\` | helpers |
| 4 | \`routing/\` | routes |
| 4 | \`policy/client/\` | client-side policy, with \`backticks\` in what |
| 6 | \`proxy/\` | shared by both directions |
| 7 | \`proxy/outbound/\` | outbound |
| 7 | \`proxy/inbound/\` | inbound |

## Ports

| port | where | why |
|---|---|---|
| 15001 | \`not/a/row/\` | not read |
`;

// A clean tree that every test starts from; each test adds or overwrites a few files.
const CLEAN = {
  'errors.ts': 'export class NodemeshError extends Error {}\n',
  'log.ts': "import { NodemeshError } from './errors';\nexport const log = (e: NodemeshError) => e;\n",
  'util/deadline.ts': "import type { NodemeshError } from '../errors.js';\nexport const d = 1;\n",
  'routing/index.ts': "export * from './table';\n",
  'routing/table.ts': "import { d } from '../util/deadline';\nexport const t = d;\n",
  'policy/client/limits.ts': "export const l = require('../../util/deadline');\n",
  'proxy/inputs.ts': "import { t } from '../routing';\nexport const i = t;\n",
  'proxy/outbound/decide.ts': "import { i } from '../inputs';\nexport const o = async () => (await import('../../policy/client/limits')).l + i;\n",
  'proxy/inbound/deliver.ts': "export type T = typeof import('../inputs').i;\n",
  // Tests are not checked: this one may import anything.
  'util/deadline.test.ts': "import { o } from '../proxy/outbound/decide';\nvoid o;\n",
};

const roots = [];
after(() => { for (const r of roots) rmSync(r, { recursive: true, force: true }); });

// Writes a fixture tree (the clean one with `changes` applied; null removes a file) into a
// fresh temporary directory, removed when the tests end whatever their outcome.
function tree(changes = {}, table = TABLE) {
  const root = mkdtempSync(join(tmpdir(), 'nodemesh-check-layers-'));
  roots.push(root);
  writeFileSync(join(root, 'ARCHITECTURE.md'), table);
  for (const [path, text] of Object.entries({ ...CLEAN, ...changes })) {
    if (text === null) continue;
    mkdirSync(dirname(join(root, 'src', path)), { recursive: true });
    writeFileSync(join(root, 'src', path), text);
  }
  return root;
}

// In-process: loading the TypeScript parser takes a second per process on a busy machine.
function check(root) {
  const { code, output } = run(['--root', root]);
  return { status: code, out: output };
}

test('a clean tree passes with a one-line summary of files and imports', () => {
  const { status, out } = check(tree());
  assert.equal(status, 0, out);
  const lines = out.trim().split('\n');
  assert.equal(lines.length, 1, out);
  // 9 files (the test file is not one); every relative import of them counted, of all five kinds.
  assert.match(lines[0], /9 files, 9 imports checked against 7 rows/);
});

test('an import from a higher layer fails and names the file, the line, both rows and the fix', () => {
  const { status, out } = check(tree({
    'routing/table.ts': "import { d } from '../util/deadline';\n\nimport type { o } from '../proxy/outbound/decide';\nexport const t = d;\n",
  }));
  assert.equal(status, 1, out);
  assert.match(out, /^src\/routing\/table\.ts:3: imports src\/proxy\/outbound\/decide\.ts/m);
  assert.match(out, /src\/routing\/table\.ts is in row `routing\/` \(layer 4/);
  assert.match(out, /src\/proxy\/outbound\/decide\.ts is in row `proxy\/outbound\/` \(layer 7/);
  assert.match(out, /layer 7 is above layer 4/);
  assert.match(out, /move the piece .* down .* or invert the dependency/);
  assert.match(out, /FAILED: 1 imports against the table/);
});

test('an import between two rows of the same layer fails', () => {
  const { status, out } = check(tree({
    'proxy/inbound/deliver.ts': "export type T = typeof import('../inputs').i;\nexport { o } from '../outbound/decide';\n",
  }));
  assert.equal(status, 1, out);
  assert.match(out, /^src\/proxy\/inbound\/deliver\.ts:2: imports src\/proxy\/outbound\/decide\.ts/m);
  assert.match(out, /both rows are layer 7/);
  assert.match(out, /FAILED: 1 imports against the table, 0 cycles/);
});

test('an import cycle between files fails and is printed as a chain', () => {
  const { status, out } = check(tree({
    'routing/table.ts': "import { d } from '../util/deadline';\nimport { m } from './match';\nexport const t = d + m;\n",
    'routing/match.ts': "import type { t } from './table';\nexport const m = 1;\nexport type X = typeof t;\n",
  }));
  assert.equal(status, 1, out);
  assert.match(out, /^import cycle: src\/routing\/match\.ts:1 -> src\/routing\/table\.ts:2 -> src\/routing\/match\.ts$/m);
  assert.match(out, /FAILED: 0 imports against the table, 1 cycles/);
});

test('a longer cycle is printed once, whichever file it is found from', () => {
  const groups = findCycles(graph({ a: ['b'], b: ['c'], c: ['a', 'd'], d: [] }));
  assert.equal(groups.length, 1);
  assert.deepEqual(groups[0].files, ['a', 'b', 'c']);
  assert.deepEqual(groups[0].cycles.map(chain), ['a:1 b:1 c:1']);
});

test('cycles sharing files form one group: every import on a cycle is shown, and the import they all go through is named', () => {
  // One bad import (x -> top) closes two cycles, top -> m1 -> x and top -> m2 -> x.
  const groups = findCycles(graph({ top: ['m1', 'm2'], m1: ['x'], m2: ['x'], x: ['top'], other: ['x'] }));
  assert.equal(groups.length, 1);
  assert.deepEqual(groups[0].files, ['m1', 'm2', 'top', 'x']);
  assert.deepEqual(groups[0].cycles.map(chain), ['m1:1 x:1 top:1', 'm2:1 x:1 top:2']);
  assert.deepEqual(groups[0].cuts.map((e) => `${e.from}->${e.to}`), ['x->top']);
  // Two separate cycles stay two groups.
  assert.equal(findCycles(graph({ a: ['b'], b: ['a'], c: ['d'], d: ['c'] })).length, 2);

  const { status, out } = check(tree({
    'util/a.ts': "import './b';\nimport './c';\n",
    'util/b.ts': "import './d';\n",
    'util/c.ts': "import './d';\n",
    'util/d.ts': "import './a';\n",
  }));
  assert.equal(status, 1, out);
  assert.match(out, /^import cycles among 4 files \(2 shown/m);
  assert.match(out, /^import cycle: src\/util\/a\.ts:1 -> src\/util\/b\.ts:1 -> src\/util\/d\.ts:1 -> src\/util\/a\.ts$/m);
  assert.match(out, /^import cycle: src\/util\/a\.ts:2 -> src\/util\/c\.ts:1 -> src\/util\/d\.ts:1 -> src\/util\/a\.ts$/m);
  assert.match(out, /every cycle of these files goes through src\/util\/d\.ts:1 -> src\/util\/a\.ts: removing that import breaks them all/);
});

// A graph for findCycles from { file: [imported files] }; each file's imports are on lines 1, 2, ...
function graph(imports) {
  return new Map(Object.entries(imports).map(([from, tos]) => [from, tos.map((to, i) => ({ from, to, line: i + 1 }))]));
}
const chain = (cycle) => cycle.map((e) => `${e.from}:${e.line}`).join(' ');

test('a file no row covers fails', () => {
  const { status, out } = check(tree({ 'policy/server/authz.ts': 'export const a = 1;\n' }));
  assert.equal(status, 1, out);
  assert.match(out, /^src\/policy\/server\/authz\.ts: no row of the layer table/m);
  assert.match(out, /1 uncovered files/);
});

test('a relative import that names no file fails', () => {
  const { status, out } = check(tree({ 'proxy/inputs.ts': "import { t } from '../routing/gone';\nexport const i = t;\n" }));
  assert.equal(status, 1, out);
  assert.match(out, /^src\/proxy\/inputs\.ts:1: '\.\.\/routing\/gone' names no file/m);
});

test('the longest path wins: proxy/outbound/x.ts is in its own row, not in proxy/', () => {
  const rows = parseLayerTable(TABLE);
  assert.equal(rows.length, 7, 'the Ports table after the section is not read');
  assert.deepEqual(rowOf(rows, 'proxy/outbound/x.ts').path, 'proxy/outbound/');
  assert.equal(rowOf(rows, 'proxy/outbound/x.ts').row.layer, 7);
  assert.equal(rowOf(rows, 'proxy/x.ts').path, 'proxy/');
  assert.equal(rowOf(rows, 'proxy/outboundish.ts').path, 'proxy/');
  assert.equal(rowOf(rows, 'log.ts').row.layer, 0);
  assert.equal(rowOf(rows, 'policy/x.ts'), undefined);
  // And so, in a tree: proxy/ importing outbound is an import from a higher layer.
  const { status, out } = check(tree({ 'proxy/pools.ts': "import { o } from './outbound/decide';\nexport const p = o;\n" }));
  assert.equal(status, 1, out);
  assert.match(out, /src\/proxy\/pools\.ts:1: imports src\/proxy\/outbound\/decide\.ts[^]*layer 7 is above layer 6/);
});

test('every kind of import is read, with its line; comments and strings are not imports', () => {
  const text = [
    "import a from './a';",
    "import type { B } from './b';",
    "export { c } from './c';",
    "export * from './d';",
    "const e = require('./e');",
    "const f = () => import('./f');",
    "type G = import('./g').G;",
    "import h = require('./h');",
    "// import x from './not-this';",
    "const s = \"import y from './nor-this'\";",
  ].join('\n');
  assert.deepEqual(importsOf(text).map((i) => `${i.line} ${i.specifier}`),
    ['1 ./a', '2 ./b', '3 ./c', '4 ./d', '5 ./e', '6 ./f', '7 ./g', '8 ./h']);
});

test('the command exits 0 on a clean tree, 1 with the problems on stderr', () => {
  const clean = spawnSync(process.execPath, [SCRIPT, '--root', tree()], { encoding: 'utf8' });
  assert.equal(clean.status, 0, clean.stderr);
  assert.match(clean.stdout, /^check-layers: 9 files/);
  const bad = spawnSync(process.execPath, [SCRIPT, `--root=${tree({ 'util/x.ts': "import '../proxy/inputs';\n" })}`], { encoding: 'utf8' });
  assert.equal(bad.status, 1, bad.stdout);
  assert.match(bad.stderr, /^src\/util\/x\.ts:1: imports src\/proxy\/inputs\.ts/m);
  const usage = spawnSync(process.execPath, [SCRIPT, '--bogus'], { encoding: 'utf8' });
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /usage: node scripts\/check-layers\.mjs \[--root DIR\]/);
});

test('a malformed table exits 2 instead of checking nothing', () => {
  const noSection = check(tree({}, '# no layers here\n'));
  assert.equal(noSection.status, 2, noSection.out);
  assert.match(noSection.out, /no "## Layers" section/);
  const badRow = check(tree({}, '## Layers\n\n| layer | path | what |\n|---|---|---|\n| x | `util/` | y |\n'));
  assert.equal(badRow.status, 2, badRow.out);
  assert.match(badRow.out, /layer "x" is not a whole number/);
});
