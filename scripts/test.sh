#!/usr/bin/env bash
# The full test suite: installs and builds what it needs, then runs unit and integration
# tests. As root it also runs the namespace/BPF suites; under CI=true those must not skip.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node scripts/run-tests.js all "$@"
