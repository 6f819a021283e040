// The layering check on the real tree (issue 11): src/ against the layer table in
// ARCHITECTURE.md. It runs with the unit tests, so `.ci/run` (scripts/test.sh, all) and
// `node scripts/run-tests.js unit` both fail while any import breaks the table or closes a
// cycle; the failure message is the check's own list of what to fix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { run } from './check-layers.mjs';

test('src/ follows the layer table in ARCHITECTURE.md, with no import cycle', () => {
  const { code, output } = run([]);
  if (code === 0) console.log(output);
  assert.equal(code, 0, `node scripts/check-layers.mjs found:\n${output}`);
});
