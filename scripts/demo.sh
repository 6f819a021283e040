#!/usr/bin/env bash
# The demo: installs and builds what it needs, then walks through capture on the local
# node simulator (see README "What the demo shows"). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node dist/src/cli/main.js sim down --name demo >/dev/null 2>&1 || true
exec node dist/src/cli/main.js demo "$@"
