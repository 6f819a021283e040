// The table run-tests.js prints after the tests: how long set-up and each test file took,
// so a slow machine shows, and one summary line that CI reads. The numbers come from
// suite-times-reporter.mjs, which the test run writes to a temporary file.
'use strict';
const { readFileSync } = require('node:fs');
const { relative, sep } = require('node:path');

// Returns the reporter's { files, runner }, or a string saying why there is none.
function readSuiteTimes(path) {
  let text;
  try { text = readFileSync(path, 'utf8'); } catch (err) { return `cannot read ${path}: ${err.code ?? err.message}`; }
  try {
    const times = JSON.parse(text);
    if (typeof times?.error === 'string') return `the reporter failed: ${times.error}`;
    if (Array.isArray(times?.files)) return times;
  } catch { /* reported below */ }
  return `cannot parse ${path} (${text.length} bytes; the test run may have been cut short)`;
}

const add = (a, b) => ({ passed: a.passed + b.passed, failed: a.failed + b.failed, skipped: a.skipped + b.skipped });
const none = { passed: 0, failed: 0, skipped: 0 };

// Differences from Node's own totals (what the spec reporter prints), so a Node upgrade
// that changes its events shows up here instead of as quietly wrong counts.
function checkAgainstNode(sum, runner) {
  if (runner.pass === undefined) return 'Node reported no totals to check the counts against';
  const node = { passed: runner.pass, failed: runner.fail + runner.cancelled, skipped: runner.skipped + runner.todo };
  const off = Object.keys(node).filter((k) => node[k] !== sum[k]);
  return off.length === 0 ? null
    : `counts differ from Node's totals: ${off.map((k) => `${k} ${sum[k]} here, ${node[k]} by Node`).join('; ')}`;
}

// Lines of the table; the summary line, the last one, is the only one CI parses.
// groupUnit: one "unit (N files)" line, for the full run, where dozens of unit files would bury
// the integration files that show a slow machine. The group's time is the sum of its
// files' times, which is its wall time because the full run goes one file at a time.
function formatSuiteTimes({ times, root, unitDir, groupUnit, setupSeconds, testSeconds }) {
  const rows = [];
  const row = (name, seconds, c) => rows.push([name, seconds, c]);
  if (setupSeconds !== undefined) row('setup (scripts/setup.sh)', setupSeconds, null);
  const unit = times.files.filter((f) => f.file.startsWith(unitDir + sep));
  if (groupUnit && unit.length > 0) {
    const seconds = unit.some((f) => f.durationMs === null) ? null : unit.reduce((s, f) => s + f.durationMs, 0) / 1000;
    row(`unit (${unit.length} files)`, seconds, unit.reduce(add, none));
  }
  // By path, as the files were given: with parallel unit files, completion order varies.
  for (const f of [...times.files].sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0))) {
    if (groupUnit && unit.includes(f)) continue;
    row(relative(root, f.file), f.durationMs === null ? null : f.durationMs / 1000, f);
  }
  const sum = times.files.reduce(add, none);
  // The test run's wall time, not the sum of the files: unit files may run in parallel.
  row('total', (setupSeconds ?? 0) + testSeconds, sum);

  const width = Math.max(...rows.map(([name]) => name.length));
  const lines = rows.map(([name, seconds, c]) => {
    const time = (seconds === null ? '?' : seconds.toFixed(1)).padStart(8) + ' s';
    const counts = c ? `  ${String(c.passed).padStart(5)} passed ${String(c.failed).padStart(4)} failed ${String(c.skipped).padStart(4)} skipped` : '';
    return `${name.padEnd(width)}${time}${counts}`;
  });
  lines.push(`tests: ${sum.passed} passed, ${sum.failed} failed, ${sum.skipped} skipped`);
  return { lines, sum, mismatch: checkAgainstNode(sum, times.runner ?? {}) };
}

module.exports = { readSuiteTimes, formatSuiteTimes };
