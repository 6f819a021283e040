#!/usr/bin/env bash
# The full test suite: installs and builds what it needs, then runs unit and integration
# tests. As root it also runs the namespace/BPF suites; under CI=true those must not skip.
set -euo pipefail
cd "$(dirname "$0")/.."
# Set-up is timed here so run-tests.js can list it with the suites: a slow run then shows
# whether set-up or the tests took the time. Whole seconds are enough for a step of minutes.
setup_started=$SECONDS
bash scripts/setup.sh
NODEMESH_SETUP_SECONDS=$((SECONDS - setup_started)) node scripts/run-tests.js all "$@"
