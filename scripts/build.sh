#!/usr/bin/env bash
# One build: BPF objects (clang -target bpf), the native addon (node-gyp), TypeScript (tsc).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s -C ebpf
# node-gyp builds against the local Node headers: nothing may be downloaded.
gyp_args=(rebuild)
[ -f /usr/include/node/node_api.h ] && gyp_args+=(--nodedir=/usr)
# node-gyp rebuild empties build/, so its log goes elsewhere; it is shown only on failure.
gyplog=$(mktemp)
npx --no-install node-gyp "${gyp_args[@]}" >"$gyplog" 2>&1 || { cat "$gyplog" >&2; rm -f "$gyplog"; exit 1; }
rm -f "$gyplog"
# tsc's output is emptied first: a source file that moved would otherwise leave its old
# compiled copy (and its old tests) behind for the test runner to find. (dist/bpf is make's.)
rm -rf dist/src dist/test dist/bench
npx --no-install tsc -p .
