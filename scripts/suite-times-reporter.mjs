// A second --test-reporter for run-tests.js: per test file, its wall time and how many
// tests passed, failed and were skipped, written as one JSON object when the run ends.
// Checked against what Node 20.20 emits with process isolation (one child per file):
//  - each file is itself a test named by its absolute path; its test:complete carries
//    the child's wall time (spawn to exit), which is accurate even when files run
//    concurrently and their events reach the reporter late, in batches.
//  - test:pass/test:fail come for every test and suite, at any nesting; describe blocks
//    have details.type 'suite'. The file itself gets a test:pass/test:fail only when it
//    reported no tests or failed outside them (crash, non-zero exit), and then Node counts
//    it as a test too. Counting exactly as Node's countCompletedTest does keeps these
//    numbers equal to the spec reporter's totals.

// The root's closing diagnostics ("pass 12"): kept so run-tests.js can check that the
// counts above still match Node's own after a Node upgrade.
const TOTAL = /^(tests|suites|pass|fail|cancelled|skipped|todo) (\d+)$/;

// Adds one event to the tallies: files by path, runner from Node's closing totals.
function count({ files, runner }, { type, data }) {
  if (type === 'test:diagnostic' && data.file === undefined) {
    const m = TOTAL.exec(data.message);
    if (m) runner[m[1]] = Number(m[2]);
    return;
  }
  if (!data?.file) return;
  let e = files.get(data.file);
  if (!e) files.set(data.file, (e = { file: data.file, durationMs: null, passed: 0, failed: 0, skipped: 0 }));
  if (type === 'test:complete' && data.name === data.file) {
    e.durationMs = data.details?.duration_ms ?? null;
  } else if ((type === 'test:pass' || type === 'test:fail') && data.details?.type !== 'suite') {
    // The same order as Node's counters: skip and todo first, so a failing todo test
    // is "skipped", not a failure (it does not fail the run either). Cancelled tests
    // (timed out, aborted) arrive as test:fail: Node shows them apart, here they fail.
    if (data.skip !== undefined || data.todo !== undefined) e.skipped++;
    else if (type === 'test:fail') e.failed++;
    else e.passed++;
  }
}

export default async function* suiteTimes(source) {
  const tallies = { files: new Map(), runner: {} };
  let error;
  for await (const event of source) {
    // A throw here would crash node --test and change the run's exit code; instead the
    // first error is handed to run-tests.js, which then prints no counts.
    if (error) continue;
    try { count(tallies, event); } catch (err) { error = String(err?.stack ?? err); }
  }
  yield JSON.stringify(error ? { error } : { files: [...tallies.files.values()], runner: tallies.runner }) + '\n';
}
