#!/usr/bin/env node
// Runs the compiled test files with Node's built-in test runner.
//   unit:         dist/src/**/*.test.js   (next to the code they test)
//   integration:  dist/test/**/*.test.js  (namespaces, BPF, the simulator: run one at a time)
// Node 20's --test takes no globs, so the files are found here.
'use strict';
const { readdirSync, statSync } = require('node:fs');
const { join } = require('node:path');
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
const result = spawnSync(process.execPath, ['--test', ...concurrency, '--test-reporter=spec', ...files], {
  stdio: 'inherit',
  env: { NODEMESH_LOG_LEVEL: 'warn', ...process.env },
});
process.exit(result.status ?? 1);
