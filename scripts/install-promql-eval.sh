#!/usr/bin/env bash
# Builds test/tools/promql-eval, a small Go program that evaluates PromQL with Prometheus's
# own engine (the prometheus/prometheus module's promql, tsdb and textparse packages)
# against scraped metrics, and prints its path on the last line of stdout. The dashboard
# suite (test/dashboards.test.ts) runs every query of the shipped Grafana dashboards with it.
#
#   1. .tools/bin/promql-eval when it was built from the same sources (main.go, go.mod,
#      go.sum: their hash is kept beside it);
#   2. else `go build` through the Go module proxy into .tools/gomod (the first build
#      downloads ~150 MB of modules and compiles for a few minutes on 2 cores; later runs
#      take milliseconds).
#
# Why not promtool: it evaluates an arbitrary expression only against a running Prometheus
# (`promtool query`) or as a rules unit test that must be given the expected result.
#
# Exit codes: 0 ready; 3 not built and no Go toolchain to build it; 1 the build failed.
# The Prometheus version is the one test/tools/promql-eval/go.mod requires. Nothing is
# written outside .tools/ (and Go's own build cache).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

src="$root/test/tools/promql-eval"
bindir="$root/.tools/bin"
bin="$bindir/promql-eval"
stamp="$bin.sources"
want=$(cd "$src" && cat main.go go.mod go.sum | sha256sum | cut -d' ' -f1)

if [ -x "$bin" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "install-promql-eval: $bin is built from the current sources" >&2
  echo "$bin"
  exit 0
fi

go_bin=$(command -v go 2>/dev/null || true)
[ -z "$go_bin" ] && [ -x /usr/local/go/bin/go ] && go_bin=/usr/local/go/bin/go
if [ -z "$go_bin" ]; then
  echo "install-promql-eval: no Go toolchain to build $src with; install Go (golang-go) and run this again" >&2
  exit 3
fi

echo "install-promql-eval: building $bin with $("$go_bin" version)" >&2
mkdir -p "$bindir"
started=$(date +%s)
# -mod=readonly: the versions are go.sum's, never re-resolved; -modcacherw so that
# rm -rf .tools works; CGO off: a static binary, and no C toolchain needed.
if ! (cd "$src" && CGO_ENABLED=0 GOFLAGS="-mod=readonly -modcacherw" GOMODCACHE="$root/.tools/gomod" \
  "$go_bin" build -trimpath -ldflags "-s -w" -o "$bin.tmp" . >&2); then
  rm -f "$bin.tmp"
  echo "install-promql-eval: go build in $src failed (is the Go module proxy reachable? see the output above)" >&2
  exit 1
fi
mv "$bin.tmp" "$bin"
echo "$want" > "$stamp"
echo "install-promql-eval: built $bin in $(( $(date +%s) - started ))s" >&2
echo "$bin"
