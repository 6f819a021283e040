#!/usr/bin/env bash
# One build: BPF objects (clang -target bpf), the native addon (node-gyp), TypeScript (tsc).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f /usr/include/node/node_api.h ]; then export npm_config_nodedir=/usr; fi
make -s -C ebpf
# node-gyp rebuild empties build/, so its log goes elsewhere; it is shown only on failure.
gyplog=$(mktemp)
npx --no-install node-gyp rebuild >"$gyplog" 2>&1 || { cat "$gyplog" >&2; rm -f "$gyplog"; exit 1; }
rm -f "$gyplog"
npx --no-install tsc -p .
