#!/usr/bin/env bash
# Builds a real Kubernetes control plane for the e2e tests and prints the directory that
# holds its binaries on the last line of stdout: kube-apiserver and kube-controller-manager
# of one pinned Kubernetes release, and etcd of one pinned etcd release.
#
#   1. .tools/control-plane/bin, when each binary there reports the pinned version;
#   2. else all three are built from the Go module proxy in a scratch module under
#      .tools/control-plane/src. From empty Go caches that downloads ~750 MB of modules and
#      compiles for ~15 min on 2 cores; with Go's build cache warm it only links (~1 min).
#
# Why a scratch module: `go install k8s.io/kubernetes/cmd/kube-apiserver@VERSION` is refused
# because k8s.io/kubernetes's go.mod replaces its staging modules (k8s.io/api, ...) with
# directories and requires them at v0.0.0. A module of our own requires k8s.io/kubernetes
# and replaces each of those with its published v0.X.Y release instead.
#
# It also puts the standard-channel CRDs of one pinned Gateway API release (the files of
# that release's Go module, config/crd/standard) in .tools/control-plane/gateway-api-crds.
#
# Exit codes: 0 ready; 3 no Go toolchain; 1 the build failed.
# NODEMESH_KUBE_VERSION, NODEMESH_ETCD_VERSION and NODEMESH_GATEWAY_API_VERSION override the pins. Nothing is installed
# outside the repository's .tools/ (Go keeps its module and build caches where it always does).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

KUBE_VERSION=${NODEMESH_KUBE_VERSION:-v1.37.2}
ETCD_VERSION=${NODEMESH_ETCD_VERSION:-v3.7.3}
# The newest Gateway API release whose module builds with this machine's Go 1.26.
GATEWAY_API_VERSION=${NODEMESH_GATEWAY_API_VERSION:-v1.6.3}
base="$root/.tools/control-plane"
bindir="$base/bin"
srcdir="$base/src"

kube_minor=$(echo "$KUBE_VERSION" | sed -n 's/^v1\.\([0-9][0-9]*\)\..*/\1/p')
if [ -z "$kube_minor" ]; then
  echo "install-control-plane: NODEMESH_KUBE_VERSION=$KUBE_VERSION is not a v1.X.Y release" >&2
  exit 1
fi
staging_version="v0.${KUBE_VERSION#v1.}"

# Each binary says its version; a binary of another pin (or a half-written one) is rebuilt.
# (Read whole, not piped into grep -q: grep leaving at the first match can kill a binary
# that prints more lines with SIGPIPE, and pipefail then reports a good binary as bad.)
reports() {
  local out
  out=$("$1" --version 2>/dev/null) || return 1
  [[ $out == *"$2"* ]]
}
ready() {
  reports "$bindir/kube-apiserver" "Kubernetes $KUBE_VERSION" &&
    reports "$bindir/kube-controller-manager" "Kubernetes $KUBE_VERSION" &&
    reports "$bindir/etcd" "etcd Version: ${ETCD_VERSION#v}"
}
go_bin=$(command -v go 2>/dev/null || true)
[ -z "$go_bin" ] && [ -x /usr/local/go/bin/go ] && go_bin=/usr/local/go/bin/go
if [ -z "$go_bin" ]; then
  echo "install-control-plane: no Go toolchain to build Kubernetes $KUBE_VERSION with; install Go and run this again" >&2
  exit 3
fi

fail() { echo "install-control-plane: $1 (is the Go module proxy reachable? see the output above)" >&2; exit 1; }

crddir="$base/gateway-api-crds"
if [ "$(cat "$crddir/VERSION" 2>/dev/null)" != "$GATEWAY_API_VERSION" ]; then
  moddir=$("$go_bin" mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
  [ -d "$moddir/config/crd/standard" ] || fail "cannot download sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION"
  rm -rf "$crddir" && mkdir -p "$crddir"
  cp "$moddir"/config/crd/standard/gateway.networking.k8s.io_*.yaml "$crddir/"
  chmod u+w "$crddir"/*.yaml
  echo "$GATEWAY_API_VERSION" >"$crddir/VERSION"
  echo "install-control-plane: Gateway API $GATEWAY_API_VERSION CRDs in $crddir" >&2
fi

if ready; then
  echo "install-control-plane: $bindir holds Kubernetes $KUBE_VERSION and etcd $ETCD_VERSION already" >&2
  echo "$bindir"
  exit 0
fi

started=$(date +%s)
echo "install-control-plane: building Kubernetes $KUBE_VERSION and etcd $ETCD_VERSION into $bindir with $("$go_bin" version)" >&2
export GOFLAGS=-mod=mod CGO_ENABLED=0

# The staging modules k8s.io/kubernetes replaces with directories, read from its own go.mod.
# sample-cli-plugin and sample-controller are examples nothing imports, and their releases
# are not all published, so they are left out.
gomod=$("$go_bin" mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
[ -f "$gomod" ] || fail "cannot download k8s.io/kubernetes@$KUBE_VERSION"
staging=$(sed -n 's|^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*|\1|p' "$gomod" | grep -v -e sample-cli-plugin -e sample-controller)
[ -n "$staging" ] || fail "found no staging replace directives in $gomod"

rm -rf "$srcdir"
mkdir -p "$srcdir/kube" "$srcdir/etcd" "$bindir"
{
  echo "module nodemesh.test/control-plane/kube"
  echo
  echo "go $(sed -n 's/^go \(.*\)/\1/p' "$gomod")"
  echo
  echo "require k8s.io/kubernetes $KUBE_VERSION"
  echo
  echo "replace ("
  for m in $staging; do echo "	$m => $m $staging_version"; done
  echo ")"
} >"$srcdir/kube/go.mod"
cat >"$srcdir/kube/tools.go" <<'EOF'
//go:build tools

// The commands this module exists to build; the import keeps them in go.mod.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
EOF
cat >"$srcdir/etcd/go.mod" <<EOF
module nodemesh.test/control-plane/etcd

go 1.26.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOF
cat >"$srcdir/etcd/tools.go" <<'EOF'
//go:build tools

// The command this module exists to build; the import keeps it in go.mod.
package tools

import _ "go.etcd.io/etcd/server/v3"
EOF

# The version stamps a release build sets: clients (helm, the agent) read the server's
# version from /version, and an unstamped build reports v0.0.0.
stamp="k8s.io/component-base/version"
kube_ldflags="-s -w -X $stamp.gitVersion=$KUBE_VERSION -X $stamp.gitMajor=1 -X $stamp.gitMinor=$kube_minor -X $stamp.gitTreeState=clean -X $stamp.buildDate=1970-01-01T00:00:00Z"

# Into a temporary directory first, so an interrupted build never leaves a binary that
# looks ready.
tmpbin=$(mktemp -d "$base/bin.XXXXXX")
trap 'rm -rf "$tmpbin"' EXIT
(cd "$srcdir/kube" && "$go_bin" mod tidy >&2 && "$go_bin" build -trimpath -ldflags "$kube_ldflags" -o "$tmpbin/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager >&2) ||
  fail "building kube-apiserver and kube-controller-manager $KUBE_VERSION failed"
(cd "$srcdir/etcd" && "$go_bin" mod tidy >&2 && "$go_bin" build -trimpath -ldflags "-s -w" -o "$tmpbin/etcd" go.etcd.io/etcd/server/v3 >&2) ||
  fail "building etcd $ETCD_VERSION failed"
mv -f "$tmpbin"/* "$bindir/"
if ! ready; then
  echo "install-control-plane: built into $bindir, but the binaries do not report Kubernetes $KUBE_VERSION / etcd $ETCD_VERSION:" >&2
  for b in kube-apiserver kube-controller-manager etcd; do "$bindir/$b" --version >&2 || true; done
  exit 1
fi
echo "install-control-plane: built in $(($(date +%s) - started))s" >&2
echo "$bindir"
