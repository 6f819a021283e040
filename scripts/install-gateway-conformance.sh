#!/usr/bin/env bash
# Makes the Gateway API conformance suite available and prints its directory on the last
# line of stdout: the Go module sigs.k8s.io/gateway-api/conformance, which carries the
# mesh tests (tests/mesh/*.go, *.yaml) and their base manifests (mesh/manifests.yaml).
# nodemesh's runner (test/gateway-conformance.test.ts) reads the manifests from it and
# checks its own translation of the tests against the Go files.
#
#   1. .tools/gomod/<module>@<version> when it is there already;
#   2. else `go mod download` through the Go module proxy (about 1 MB, seconds).
#
# Exit codes: 0 ready; 3 not there and no Go toolchain to fetch it; 1 the download failed.
# NODEMESH_GATEWAY_CONFORMANCE_VERSION overrides the pin (the runner's translation must
# then be re-checked: it fails naming what differs). Nothing is written outside .tools/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

VERSION=${NODEMESH_GATEWAY_CONFORMANCE_VERSION:-v1.6.3}
MODULE=sigs.k8s.io/gateway-api/conformance
cache="$root/.tools/gomod"
dir="$cache/$MODULE@$VERSION"

if [ -f "$dir/mesh/manifests.yaml" ] && [ -f "$dir/tests/mesh/main.go" ]; then
  echo "$dir"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "install-gateway-conformance: no Go toolchain to download $MODULE@$VERSION; install Go (golang-go) and run again" >&2
  exit 3
fi
# From an empty directory (outside any module); -modcacherw so that rm -rf .tools works.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
if ! (cd "$scratch" && GOFLAGS=-modcacherw GOMODCACHE="$cache" go mod download "$MODULE@$VERSION" >&2); then
  echo "install-gateway-conformance: go mod download $MODULE@$VERSION failed (is the Go module proxy reachable? see the output above)" >&2
  exit 1
fi
echo "$dir"
