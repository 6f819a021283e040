#!/usr/bin/env bash
# Installs everything nodemesh needs on a Debian machine, then builds it.
# Safe to run again: each step checks before it installs.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: clang/llvm for the BPF objects, libbpf-dev for the addon, bpftool for
# inspection, iptables/nftables for the fallback back-end and the simulator's kube-proxy
# stand-in, iproute2 for namespaces, g++/make/python3 for node-gyp, openssl for the test
# control plane's certificates.
DEB_PACKAGES=(clang llvm libbpf-dev libelf-dev zlib1g-dev bpftool iptables nftables iproute2 g++ make python3 procps openssl)
missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]}; run this script as root so it can install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages (exactly the locked versions).
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

bash scripts/build.sh
