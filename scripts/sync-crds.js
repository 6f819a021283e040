#!/usr/bin/env node
// The CRDs have one source, deploy/crds/; the Helm chart's crds/ is generated from it:
//   node scripts/sync-crds.js          writes the chart's copy (run it after editing deploy/crds/)
//   node scripts/sync-crds.js --check  exits 1, naming the files, when the copy is stale
//
// Why a generated copy that is committed, and not a build step or a symlink: `helm install
// deploy/helm/nodemesh` from a fresh checkout must work with nothing built, and `helm
// package` must carry the files themselves (Helm only warns on a symlink, and a symlink out
// of the chart directory does not survive packaging). So the copy lives in git, and
// test/helm-chart.test.ts fails, naming this command, when it differs from the source;
// build.sh does not write it, because a build that regenerated it would hide a stale
// committed copy from that check.
'use strict';
const { copyFileSync, readdirSync, readFileSync, rmSync } = require('node:fs');
const { join } = require('node:path');

const ROOT = join(__dirname, '..');
const SOURCE = join(ROOT, 'deploy', 'crds');
const CHART_CRDS = join(ROOT, 'deploy', 'helm', 'nodemesh', 'crds');

/** The differences between the source and the chart's copy, as lines a person can act on. */
function staleCrds() {
  const source = readdirSync(SOURCE).filter((f) => f.endsWith('.yaml')).sort();
  const copy = readdirSync(CHART_CRDS).sort();
  const problems = [];
  for (const f of source) {
    if (!copy.includes(f)) problems.push(`deploy/helm/nodemesh/crds/${f} is missing`);
    else if (!readFileSync(join(SOURCE, f)).equals(readFileSync(join(CHART_CRDS, f)))) problems.push(`deploy/helm/nodemesh/crds/${f} differs from deploy/crds/${f}`);
  }
  for (const f of copy) if (!source.includes(f)) problems.push(`deploy/helm/nodemesh/crds/${f} has no source in deploy/crds/`);
  return { source, copy, problems };
}

function main() {
  const { source, copy, problems } = staleCrds();
  if (process.argv.includes('--check')) {
    if (problems.length === 0) return 0;
    for (const p of problems) console.error(`sync-crds: ${p}`);
    console.error('sync-crds: run `node scripts/sync-crds.js` to regenerate the chart\'s copy');
    return 1;
  }
  for (const f of copy) if (!source.includes(f)) rmSync(join(CHART_CRDS, f));
  for (const f of source) copyFileSync(join(SOURCE, f), join(CHART_CRDS, f));
  for (const p of problems) console.log(`sync-crds: fixed: ${p}`);
  return 0;
}

if (require.main === module) process.exitCode = main();
module.exports = { staleCrds };
