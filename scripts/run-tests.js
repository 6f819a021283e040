#!/usr/bin/env node
// Runs the compiled test files with Node's built-in test runner.
//   unit:         dist/src/**/*.test.js   (next to the code they test), and scripts/*.test.mjs
//                 (the scripts' own tests, and the layering check of src/, src-layers.test.mjs)
//   integration:  dist/test/**/*.test.js  (namespaces, BPF, the simulator: run one at a time)
// Node 20's --test takes no globs, so the files are found here.
'use strict';
const { existsSync, mkdtempSync, readdirSync, rmSync, statSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { spawnSync } = require('node:child_process');
const { readSuiteTimes, formatSuiteTimes } = require('./suite-times');

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

// The scripts are not compiled: their tests run from scripts/ itself.
const scriptTests = () => readdirSync(__dirname).filter((n) => n.endsWith('.test.mjs')).sort().map((n) => join(__dirname, n));

const kind = process.argv[2] ?? 'all';
const filter = process.argv[3];
const root = join(__dirname, '..', 'dist');
let files = [];
if (kind === 'unit' || kind === 'all') files.push(...find(join(root, 'src')), ...scriptTests());
if (kind === 'integration' || kind === 'all') files.push(...find(join(root, 'test')));
if (filter) files = files.filter((f) => f.includes(filter));
if (files.length === 0) {
  console.error(`no test files found for '${kind}'${filter ? ` matching '${filter}'` : ''}; did the build run?`);
  process.exit(1);
}
// Integration suites share the machine's namespaces and bpffs: one file at a time.
const concurrency = kind === 'unit' ? [] : ['--test-concurrency=1'];

// The spec reporter goes to stdout as before; a second reporter writes per-file times and
// counts to a temporary file for the table below. Without its module the tests still run.
const reporters = ['--test-reporter=spec', '--test-reporter-destination=stdout'];
const timesReporter = join(__dirname, 'suite-times-reporter.mjs');
let timesDir;
if (existsSync(timesReporter)) {
  timesDir = mkdtempSync(join(tmpdir(), 'nodemesh-suite-times-'));
  reporters.push(`--test-reporter=${timesReporter}`, `--test-reporter-destination=${join(timesDir, 'times.json')}`);
} else {
  console.error(`warning: ${timesReporter} is missing; no suite times this run`);
}

const started = process.hrtime.bigint();
const result = spawnSync(process.execPath, ['--test', ...concurrency, ...reporters, ...files], {
  stdio: 'inherit',
  env: { NODEMESH_LOG_LEVEL: 'warn', ...process.env },
});
const testSeconds = Number(process.hrtime.bigint() - started) / 1e9;
let status = result.status ?? 1;

if (timesDir) {
  const times = readSuiteTimes(join(timesDir, 'times.json'));
  rmSync(timesDir, { recursive: true, force: true });
  if (typeof times === 'string') {
    // No summary line then: CI must not read counts that were never measured.
    console.error(`warning: no suite times (the exit code is the test run's, ${status}): ${times}`);
  } else {
    // Set by scripts/test.sh, which times scripts/setup.sh before calling this.
    const setup = Number(process.env.NODEMESH_SETUP_SECONDS);
    const { lines, sum, mismatch } = formatSuiteTimes({
      times,
      root: join(__dirname, '..'),
      unitDir: join(root, 'src'),
      groupUnit: kind === 'all',
      setupSeconds: process.env.NODEMESH_SETUP_SECONDS && Number.isFinite(setup) ? setup : undefined,
      testSeconds,
    });
    if (mismatch) console.error(`warning: suite times: ${mismatch}`);
    if (sum.passed + sum.failed + sum.skipped === 0 && status === 0) {
      console.error('error: no tests ran');
      status = 1;
    }
    console.log(`\n${lines.join('\n')}`);
  }
}
// exitCode, not exit(): lets stdout drain when it is a pipe.
process.exitCode = status;
