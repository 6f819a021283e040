#!/usr/bin/env node
// Runs the compiled test files with Node's built-in test runner.
//   unit:         dist/src/**/*.test.js   (next to the code they test)
//   integration:  dist/test/**/*.test.js  (namespaces, BPF, the simulator: run one at a time)
// Node 20's --test takes no globs, so the files are found here.
'use strict';
const { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join, relative } = require('node:path');
const { spawnSync } = require('node:child_process');

function find(dir, out = []) {
  let entries;
  try { entries = readdirSync(dir); } catch { return out; }
  for (const name of entries) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) find(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out.sort();
}

const kind = process.argv[2] ?? 'all';
const filter = process.argv[3];
const root = join(__dirname, '..', 'dist');
let files = [];
if (kind === 'unit' || kind === 'all') files.push(...find(join(root, 'src')));
if (kind === 'integration' || kind === 'all') files.push(...find(join(root, 'test')));
if (filter) files = files.filter((f) => f.includes(filter));
if (files.length === 0) {
  console.error(`no test files found for '${kind}'${filter ? ` matching '${filter}'` : ''}; did the build run?`);
  process.exit(1);
}
// Integration suites share the machine's namespaces and bpffs: one file at a time.
const concurrency = kind === 'unit' ? [] : ['--test-concurrency=1'];
const timesDir = mkdtempSync(join(tmpdir(), 'nm-test-times-'));
const timesFile = join(timesDir, 'times.jsonl');
const started = Date.now();
const result = spawnSync(process.execPath, [
  '--test', ...concurrency,
  '--test-reporter=spec', '--test-reporter-destination=stdout',
  `--test-reporter=${join(__dirname, 'suite-times-reporter.mjs')}`, `--test-reporter-destination=${timesFile}`,
  ...files,
], {
  stdio: 'inherit',
  env: { NODEMESH_LOG_LEVEL: 'warn', ...process.env },
});
const status = result.status ?? 1;
printTimes(timesFile, (Date.now() - started) / 1000);
rmSync(timesDir, { recursive: true, force: true });
process.exit(status);

/**
 * The time of each suite (unit files as one line), the set-up's (from scripts/test.sh),
 * the total, and last a plain `tests: N passed, N failed, N skipped` line.
 */
function printTimes(path, testSeconds) {
  let rows;
  try {
    rows = readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  } catch (err) {
    console.error(`run-tests: no suite times (${err.message}); the test run's own summary above stands`);
    return;
  }
  const unitRoot = join(root, 'src');
  const unit = { name: '', ms: 0, passed: 0, failed: 0, skipped: 0, files: 0 };
  const lines = [];
  for (const r of rows) {
    if (r.file.startsWith(unitRoot)) {
      unit.files += 1;
      for (const k of ['ms', 'passed', 'failed', 'skipped']) unit[k] += r[k];
    } else lines.push({ ...r, name: relative(root, r.file) });
  }
  if (unit.files > 0) lines.unshift({ ...unit, name: `unit tests (${unit.files} files)` });
  const total = { passed: 0, failed: 0, skipped: 0 };
  console.log('\nsuite times:');
  for (const l of lines) {
    for (const k of Object.keys(total)) total[k] += l[k];
    console.log(`  ${l.name.padEnd(40)} ${(l.ms / 1000).toFixed(1).padStart(7)} s   ${l.passed} passed, ${l.failed} failed, ${l.skipped} skipped`);
  }
  const setup = Number(process.env.NODEMESH_SETUP_SECONDS);
  if (Number.isFinite(setup) && setup > 0) console.log(`  ${'set-up (scripts/setup.sh)'.padEnd(40)} ${setup.toFixed(1).padStart(7)} s`);
  console.log(`  ${'all tests (wall clock)'.padEnd(40)} ${testSeconds.toFixed(1).padStart(7)} s`);
  console.log(`tests: ${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped`);
}
