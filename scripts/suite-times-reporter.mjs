// A second reporter for node --test (beside spec): one JSON line per test file with its
// wall time and counts, for scripts/run-tests.js to print at the end of the run, so that
// a slow machine is visible suite by suite.
//   time:    the sum of the file's top-level tests and suites (hooks included)
//   counts:  leaf tests only (describe blocks are not tests); cancelled counts as failed
export default async function* suiteTimes(source) {
  const files = new Map();
  const of = (file) => {
    let f = files.get(file);
    if (!f) files.set(file, (f = { file, ms: 0, passed: 0, failed: 0, skipped: 0 }));
    return f;
  };
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const { data } = event;
    const f = of(data.file ?? '(unknown file)');
    if (data.nesting === 0) f.ms += data.details?.duration_ms ?? 0;
    if (data.details?.type === 'suite') continue;
    if (data.skip !== undefined || data.todo !== undefined) f.skipped += 1;
    else if (event.type === 'test:pass') f.passed += 1;
    else f.failed += 1;
  }
  for (const f of files.values()) yield `${JSON.stringify(f)}\n`;
}
