#!/usr/bin/env bash
# The full test suite: installs and builds what it needs, then runs unit and integration
# tests. As root it also runs the namespace/BPF suites; under CI=true those must not skip.
set -euo pipefail
cd "$(dirname "$0")/.."
setup_started=$(date +%s)
bash scripts/setup.sh
# run-tests.js prints each suite's time at the end, with the set-up's.
NODEMESH_SETUP_SECONDS=$(( $(date +%s) - setup_started )) node scripts/run-tests.js all "$@"
