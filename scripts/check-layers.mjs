#!/usr/bin/env node
// The layering check (issue 11): reads the layer table in ARCHITECTURE.md ("## Layers")
// and the imports of every src/**/*.ts but tests, and fails on
//   - an import against the table (a higher layer, or another row of the same layer),
//   - an import cycle between files,
//   - a src file no row covers, and a relative import that names no file.
// Imports are read with the TypeScript parser, not regexes, so comments, strings and
// `import type` / `export ... from` / `import('...')` / `require('...')` are told apart
// exactly. Usage: node scripts/check-layers.mjs [--root DIR]   (DIR: has ARCHITECTURE.md and src/)
// Exit 0: clean (one summary line); 1: problems (listed); 2: the table or the usage is wrong.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const RULE = 'a file may import only from its own row or from a row of a strictly lower layer';

class UsageError extends Error {}

// ---- the table ----

// Rows as { layer, paths: ['proxy/', 'errors.ts', ...], what, line }. Throws UsageError
// when the section or a row is malformed: a check that silently read no rows would pass.
export function parseLayerTable(markdown, file = 'ARCHITECTURE.md') {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => /^## Layers\s*$/.test(l));
  if (start < 0) throw new UsageError(`${file}: no "## Layers" section`);
  const rows = [];
  for (let i = start + 1; i < lines.length && !/^## /.test(lines[i]); i++) {
    const line = lines[i].trim();
    if (!line.startsWith('|')) continue;
    const cells = line.replace(/^\|/, '').replace(/\|$/, '').split('|').map((c) => c.trim());
    if (cells[0] === 'layer' || /^-+$/.test(cells[0])) continue; // header and separator
    const where = `${file}:${i + 1}`;
    if (cells.length < 3) throw new UsageError(`${where}: a row needs | layer | paths | what |`);
    if (!/^\d+$/.test(cells[0])) throw new UsageError(`${where}: layer "${cells[0]}" is not a whole number`);
    const paths = cells[1].split(',').map((p) => p.trim()).map((p) => {
      const m = /^`([^`]+)`$/.exec(p);
      if (!m) throw new UsageError(`${where}: path "${p}" is not in backticks`);
      if (m[1].startsWith('/') || m[1].split('/').includes('..')) throw new UsageError(`${where}: path "${m[1]}" must be relative to src/`);
      return m[1];
    });
    rows.push({ layer: Number(cells[0]), paths, what: cells.slice(2).join('|'), line: i + 1 });
  }
  if (rows.length === 0) throw new UsageError(`${file}: the "## Layers" section has no table rows`);
  const seen = new Map();
  for (const row of rows) {
    for (const p of row.paths) {
      if (seen.has(p)) throw new UsageError(`${file}:${row.line}: path \`${p}\` is also in the row on line ${seen.get(p)}`);
      seen.set(p, row.line);
    }
  }
  return rows;
}

// The row of a path relative to src/ ('proxy/outbound/x.ts'): the longest table path that
// is the file itself or a folder containing it. Returns { row, path } or undefined.
export function rowOf(rows, file) {
  let best;
  for (const row of rows) {
    for (const p of row.paths) {
      const hit = p.endsWith('/') ? file.startsWith(p) : file === p;
      if (hit && (!best || p.length > best.path.length)) best = { row, path: p };
    }
  }
  return best;
}

// ---- the imports ----

// Every module specifier of a file, with its 1-based line: import (also `import type`),
// export ... from, import x = require(), import('...'), require('...'), and import types
// (`typeof import('./x')`), since a type-level dependency ties layers just as well.
export function importsOf(text, fileName = 'x.ts') {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out = [];
  const add = (lit) => {
    if (lit && (ts.isStringLiteral(lit) || ts.isNoSubstitutionTemplateLiteral(lit))) {
      out.push({ specifier: lit.text, line: source.getLineAndCharacterOfPosition(lit.getStart(source)).line + 1 });
    }
  };
  const visit = (node) => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) add(node.moduleSpecifier);
    else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) add(node.moduleReference.expression);
    else if (ts.isCallExpression(node)) {
      const callee = node.expression;
      if (callee.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(callee) && callee.text === 'require')) add(node.arguments[0]);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) add(node.argument.literal);
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

const isFile = (p) => { try { return statSync(p).isFile(); } catch { return false; } };

// The file a relative specifier names, as TypeScript's node resolution finds it:
// x.ts, x.tsx, x/index.ts; a '.js' suffix names the '.ts' file it compiles from.
export function resolveImport(fromFile, specifier) {
  const base = resolve(dirname(fromFile), specifier);
  const candidates = [];
  if (/\.[cm]?js$/.test(base)) candidates.push(base.replace(/\.([cm]?)js$/, '.$1ts'), base.replace(/\.([cm]?)js$/, '.$1tsx'));
  candidates.push(base, `${base}.ts`, `${base}.tsx`, `${base}.d.ts`, join(base, 'index.ts'), join(base, 'index.tsx'));
  return candidates.find(isFile);
}

function sourceFiles(dir, out = []) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sourceFiles(p, out);
    else if (/\.tsx?$/.test(name) && !/\.test\.tsx?$/.test(name)) out.push(p);
  }
  return out;
}

// ---- cycles ----

// Strongly connected components (Tarjan): a map file -> its component's root. A cycle
// never leaves its component, so each component with a cycle is reported as one group.
function components(graph, skip) {
  let index = 0;
  const idx = new Map(), low = new Map(), onStack = new Set(), stack = [], comp = new Map();
  const strong = (v) => {
    idx.set(v, index); low.set(v, index); index++;
    stack.push(v); onStack.add(v);
    for (const e of graph.get(v) ?? []) {
      if (e === skip) continue;
      if (!idx.has(e.to)) { strong(e.to); low.set(v, Math.min(low.get(v), low.get(e.to))); }
      else if (onStack.has(e.to)) low.set(v, Math.min(low.get(v), idx.get(e.to)));
    }
    if (low.get(v) === idx.get(v)) {
      let w;
      do { w = stack.pop(); onStack.delete(w); comp.set(w, v); } while (w !== v);
    }
  };
  for (const v of [...graph.keys()].sort()) if (!idx.has(v)) strong(v);
  return comp;
}

// The shortest cycle through edge e (breadth first from e.to back to e.from, inside the
// component), rotated to start at its smallest file so that it reads the same from anywhere.
function cycleThrough(graph, comp, e) {
  const home = comp.get(e.from);
  const back = new Map([[e.to, null]]);
  const queue = [e.to];
  while (queue.length && !back.has(e.from)) {
    const u = queue.shift();
    for (const f of graph.get(u) ?? []) {
      if (comp.get(f.to) === home && !back.has(f.to)) { back.set(f.to, f); queue.push(f.to); }
    }
  }
  const path = [];
  for (let u = e.from; u !== e.to; u = back.get(u).from) path.unshift(back.get(u));
  const cycle = [e, ...path];
  const files = cycle.map((c) => c.from);
  const at = files.indexOf([...files].sort()[0]);
  return [...cycle.slice(at), ...cycle.slice(0, at)];
}

// Import cycles as groups, one per set of files that reach each other:
//   { files, cycles: [[{ from, to, line }, ...], ...], cuts: [edge, ...] }.
// Listing every elementary cycle can be exponential (one bad import between two busy
// folders closes hundreds), so each group lists cycles until every import that lies on
// some cycle appears in one, and `cuts` names the imports that every cycle of the group
// goes through (removing any one of them alone makes the group acyclic).
export function findCycles(graph) {
  const comp = components(graph);
  const groups = new Map();
  for (const v of [...graph.keys()].sort()) {
    for (const e of graph.get(v)) {
      if (comp.get(e.to) !== comp.get(v)) continue;
      const root = comp.get(v);
      if (!groups.has(root)) groups.set(root, { files: [], cycles: [], covered: new Set(), edges: [] });
      groups.get(root).edges.push(e);
    }
  }
  for (const [v, root] of comp) if (groups.has(root)) groups.get(root).files.push(v);
  const out = [];
  for (const g of groups.values()) {
    for (const e of g.edges) {
      if (g.covered.has(e)) continue;
      const cycle = cycleThrough(graph, comp, e);
      for (const c of cycle) g.covered.add(c);
      g.cycles.push(cycle);
    }
    const inGroup = new Set(g.files);
    const cuts = g.cycles.length === 1 && g.cycles[0].length <= 2 ? [] : g.edges.filter((e) => {
      const without = components(graph, e);
      // Acyclic once e is gone: no two files of the group share a component, and no self-import.
      const roots = new Set([...inGroup].map((f) => without.get(f)));
      return roots.size === inGroup.size && !g.edges.some((f) => f !== e && f.from === f.to);
    });
    out.push({ files: g.files.sort(), cycles: g.cycles, cuts });
  }
  return out.sort((a, b) => (a.files[0] < b.files[0] ? -1 : 1));
}

// ---- the check ----

// Everything the check found in the tree at root, as data (the test reads it too).
export function checkLayers(root) {
  const archFile = join(root, 'ARCHITECTURE.md');
  const srcDir = join(root, 'src');
  if (!existsSync(archFile)) throw new UsageError(`${archFile}: not found`);
  if (!existsSync(srcDir)) throw new UsageError(`${srcDir}: not found`);
  const rows = parseLayerTable(readFileSync(archFile, 'utf8'));
  const rel = (p) => relative(root, p).split(sep).join('/');
  const inSrc = (p) => relative(srcDir, p).split(sep).join('/');

  const files = sourceFiles(srcDir);
  const checked = new Set(files);
  const uncovered = files.filter((f) => !rowOf(rows, inSrc(f))).map(rel);
  const violations = [], unresolved = [];
  const graph = new Map();
  let imports = 0;
  for (const file of files) {
    const edges = [];
    graph.set(rel(file), edges);
    for (const { specifier, line } of importsOf(readFileSync(file, 'utf8'), file)) {
      if (!specifier.startsWith('./') && !specifier.startsWith('../') && specifier !== '.' && specifier !== '..') continue;
      const target = resolveImport(file, specifier);
      if (!target) { unresolved.push({ file: rel(file), line, specifier }); continue; }
      // Outside src/ (a package.json, say) the table has nothing to say.
      if (relative(srcDir, target).startsWith('..')) continue;
      imports++;
      // The graph has the checked files only: a cycle through a test file is not ours to report.
      if (checked.has(target)) edges.push({ from: rel(file), to: rel(target), line });
      const from = rowOf(rows, inSrc(file)), to = rowOf(rows, inSrc(target));
      if (!from || !to || from.row === to.row) continue; // uncovered files are reported once, above
      if (to.row.layer >= from.row.layer) {
        violations.push({ file: rel(file), line, specifier, target: rel(target), from, to,
          kind: to.row.layer > from.row.layer ? 'higher-layer' : 'same-layer' });
      }
    }
  }
  return { rows, files: files.map(rel), imports, violations, cycles: findCycles(graph), uncovered, unresolved };
}

const rowName = (r) => `row ${r.row.paths.map((p) => `\`${p}\``).join(', ')} (layer ${r.row.layer}, ARCHITECTURE.md:${r.row.line})`;

// The report as lines: what is wrong, where, which rule, and what to do about it.
export function formatReport(result) {
  const { violations, cycles, uncovered, unresolved, files, imports, rows } = result;
  const out = [];
  for (const v of violations) {
    out.push(`${v.file}:${v.line}: imports ${v.target} ('${v.specifier}')`);
    out.push(`  ${v.file} is in ${rowName(v.from)}`);
    out.push(`  ${v.target} is in ${rowName(v.to)}`);
    if (v.kind === 'higher-layer') {
      out.push(`  rule: ${RULE}; layer ${v.to.row.layer} is above layer ${v.from.row.layer}`);
      out.push(`  fix: move the piece ${v.file} needs down to layer ${v.from.row.layer} or below, or invert the dependency (${v.file} declares what it needs, e.g. an interface or a callback, and the higher layer passes it in)`);
    } else {
      out.push(`  rule: ${RULE}; both rows are layer ${v.from.row.layer}, and rows of one layer must not reach into each other`);
      out.push(`  fix: move the piece both need down to a layer below ${v.from.row.layer}, or invert the dependency (${v.file} declares what it needs and the layer above wires the two together)`);
    }
  }
  for (const group of cycles) {
    if (group.cycles.length > 1) out.push(`import cycles among ${group.files.length} files (${group.cycles.length} shown: every import that lies on a cycle is in one):`);
    for (const cycle of group.cycles) out.push(`import cycle: ${cycle.map((e) => `${e.from}:${e.line}`).join(' -> ')} -> ${cycle[0].from}`);
    out.push('  rule: no import cycle between files (file:line is the import that leads to the next file)');
    if (group.cuts.length > 0 && group.cycles.length > 1) {
      out.push(`  every cycle of these files goes through ${group.cuts.map((e) => `${e.from}:${e.line} -> ${e.to}`).join(' and ')}: removing ${group.cuts.length === 1 ? 'that import' : 'any one of those imports'} breaks them all`);
    }
    out.push('  fix: move what the files share into a file both import, or invert one of the imports');
  }
  for (const f of uncovered) {
    out.push(`${f}: no row of the layer table in ARCHITECTURE.md covers this file`);
    out.push('  fix: add its folder (or the file) to a row of "## Layers", or move the file into a folder a row covers');
  }
  for (const u of unresolved) {
    out.push(`${u.file}:${u.line}: '${u.specifier}' names no file (tried .ts, /index.ts, .js -> .ts)`);
  }
  const counts = `${files.length} files, ${imports} imports checked against ${rows.length} rows of ARCHITECTURE.md`;
  const cycleCount = cycles.reduce((n, g) => n + g.cycles.length, 0);
  const problems = violations.length + cycleCount + uncovered.length + unresolved.length;
  out.push(problems === 0
    ? `check-layers: ${counts}; no import against the table, no cycle, every file covered`
    : `check-layers: FAILED: ${violations.length} imports against the table, ${cycleCount} cycles, ${uncovered.length} uncovered files, ${unresolved.length} unresolved imports (${counts})`);
  return { lines: out, problems };
}

// The command without its process: { code, output } for argv (tests call it in-process).
export function run(argv) {
  let root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  try {
    for (let i = 0; i < argv.length; i++) {
      if (argv[i] === '--root' && argv[i + 1] !== undefined) root = resolve(argv[++i]);
      else if (argv[i].startsWith('--root=')) root = resolve(argv[i].slice('--root='.length));
      else throw new UsageError(`unknown argument "${argv[i]}"; usage: node scripts/check-layers.mjs [--root DIR]`);
    }
    const { lines, problems } = formatReport(checkLayers(root));
    return { code: problems === 0 ? 0 : 1, output: lines.join('\n') };
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    return { code: 2, output: `check-layers: ${err.message}` };
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { code, output } = run(process.argv.slice(2));
  (code === 0 ? console.log : console.error)(output);
  process.exitCode = code;
}
