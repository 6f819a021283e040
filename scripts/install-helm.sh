#!/usr/bin/env bash
# Makes a helm v3 binary available for the chart tests and prints its path on the last
# line of stdout.
#
#   1. a helm v3 already on PATH is used as it is;
#   2. else .tools/bin/helm, when it exists and reports the pinned version;
#   3. else it is built from source with `go install helm.sh/helm/v3/cmd/helm@VERSION`
#      through the Go module proxy (the first build downloads ~200 MB of modules and
#      compiles for a few minutes on 2 cores; later runs take milliseconds).
#
# Exit codes: 0 helm ready; 3 no helm and no Go toolchain to build one; 1 the build failed.
# NODEMESH_HELM_VERSION overrides the pin (a helm v3 tag that `go list -m -versions
# helm.sh/helm/v3` lists). Nothing is installed outside the repository's .tools/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# The newest helm v3 release the module proxy resolved when this was written; its go.mod
# asks for Go 1.26.0, the toolchain this project's machines carry.
HELM_VERSION=${NODEMESH_HELM_VERSION:-v3.22.0}
bindir="$root/.tools/bin"
local_helm="$bindir/helm"

helm_version() { "$1" version --template '{{.Version}}' 2>/dev/null || true; }

if command -v helm >/dev/null 2>&1; then
  found=$(command -v helm)
  v=$(helm_version "$found")
  case "$v" in
    v3.*) echo "install-helm: using $found ($v) from PATH" >&2; echo "$found"; exit 0 ;;
    *) echo "install-helm: ignoring $found (version '${v:-unknown}', not helm v3)" >&2 ;;
  esac
fi

if [ -x "$local_helm" ] && [ "$(helm_version "$local_helm")" = "$HELM_VERSION" ]; then
  echo "install-helm: $local_helm is $HELM_VERSION already" >&2
  echo "$local_helm"
  exit 0
fi

go_bin=$(command -v go 2>/dev/null || true)
[ -z "$go_bin" ] && [ -x /usr/local/go/bin/go ] && go_bin=/usr/local/go/bin/go
if [ -z "$go_bin" ]; then
  echo "install-helm: no helm on PATH and no Go toolchain to build $HELM_VERSION with; install Go (or helm v3) and run this again" >&2
  exit 3
fi

echo "install-helm: building helm $HELM_VERSION into $bindir with $("$go_bin" version)" >&2
mkdir -p "$bindir"
started=$(date +%s)
# helm's release build stamps, besides its version, the Kubernetes version that
# `helm template` and `helm lint` assume (without it they assume 1.20): the one after
# its client-go module, v0.X.Y -> 1.X. It is read from helm's own go.mod.
gomod=$("$go_bin" mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
k8s_minor=$(sed -n 's/^[[:space:]]*k8s\.io\/client-go v0\.\([0-9][0-9]*\)\..*/\1/p' "$gomod" | head -n1)
if [ -z "$k8s_minor" ]; then
  echo "install-helm: cannot read the k8s.io/client-go version from helm's go.mod ($gomod)" >&2
  exit 1
fi
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in pkg/chartutil pkg/lint/rules; do
  ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$k8s_minor"
done
# CGO off: a static binary, and no C toolchain needed.
if ! CGO_ENABLED=0 GOBIN="$bindir" GOFLAGS=-mod=mod "$go_bin" install -trimpath -ldflags "$ldflags" \
  "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2; then
  echo "install-helm: go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION failed (is the Go module proxy reachable? see the output above)" >&2
  exit 1
fi
got=$(helm_version "$local_helm")
if [ "$got" != "$HELM_VERSION" ]; then
  echo "install-helm: built $local_helm but it reports version '$got', not $HELM_VERSION" >&2
  exit 1
fi
echo "install-helm: built $local_helm ($got) in $(( $(date +%s) - started ))s" >&2
echo "$local_helm"
