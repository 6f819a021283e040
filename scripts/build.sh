#!/usr/bin/env bash
# One build: BPF objects (clang -target bpf), the native addon (node-gyp), TypeScript (tsc).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f /usr/include/node/node_api.h ]; then export npm_config_nodedir=/usr; fi
make -s -C ebpf
mkdir -p build
npx --no-install node-gyp rebuild >build/node-gyp.log 2>&1 || { cat build/node-gyp.log >&2; exit 1; }
npx --no-install tsc -p .
