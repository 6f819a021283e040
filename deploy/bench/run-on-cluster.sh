#!/usr/bin/env bash
# Runs the bench's load on a real cluster against the namespaces of the manifests in this
# directory (apply them first; see README.md, "Comparing modes"), the way `nodemesh bench`
# does on the simulator: fortio inside the client pod, open loop at RATE req/s with a
# 1 KB POST for each connection count, same node and across nodes, modes interleaved
# (order reversed every other round), a warm-up run per block discarded. Every run is
# bounded (-t DURATION); the script ends after ROUNDS rounds.
#
#   deploy/bench/run-on-cluster.sh OUTDIR [NAMESPACE...]
#   (default namespaces: nodemesh-bench-direct nodemesh-bench-sidecar
#    nodemesh-bench-ambient nodemesh-bench-envoy; one absent from the cluster is skipped)
# Environment: RATE (1000), CONNECTIONS ("2 4 8 16 32 64"), DURATION (60s), WARMUP (10s),
# ROUNDS (2), KUBECTL (kubectl).
#
# Writes OUTDIR/<namespace>_<local|remote>_c<N>_r<round>.json (fortio's JSON) and prints
# p50/p90/p99/p999 per run. The three ambient variants share one namespace: run the script
# once per capture setting (helm upgrade ... --set capture.mode=iptables|ebpf
# [--set capture.skMsg=true]) with a different OUTDIR.
set -euo pipefail
out=${1:?usage: run-on-cluster.sh OUTDIR [NAMESPACE...]}
shift
namespaces=("$@")
[ ${#namespaces[@]} -eq 0 ] && namespaces=(nodemesh-bench-direct nodemesh-bench-sidecar nodemesh-bench-ambient nodemesh-bench-envoy)
RATE=${RATE:-1000}
CONNECTIONS=${CONNECTIONS:-"2 4 8 16 32 64"}
DURATION=${DURATION:-60s}
WARMUP=${WARMUP:-10s}
ROUNDS=${ROUNDS:-2}
KUBECTL=${KUBECTL:-kubectl}
mkdir -p "$out"

present=()
for ns in "${namespaces[@]}"; do
  if $KUBECTL get namespace "$ns" >/dev/null 2>&1; then
    $KUBECTL -n "$ns" rollout status deploy/fortio-client deploy/fortio-server-local deploy/fortio-server-remote --timeout=120s >/dev/null
    present+=("$ns")
  else
    echo "skipping $ns: namespace not found (apply its manifest first)" >&2
  fi
done
[ ${#present[@]} -eq 0 ] && { echo "no namespace to measure" >&2; exit 1; }

load() { # ns target qps connections duration
  $KUBECTL -n "$1" exec deploy/fortio-client -c fortio -- \
    fortio load -qps "$3" -c "$4" -t "$5" -payload-size 1024 -uniform -r 0.000001 -p 50,90,99,99.9 -timeout 10s -json - \
    "http://fortio-$2:8080/echo" 2>/dev/null
}

summary() { # file
  python3 - "$1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
p = {x["Percentile"]: x["Value"] * 1000 for x in d["DurationHistogram"].get("Percentiles") or []}
ok = sum(v for k, v in d["RetCodes"].items() if k.startswith("2"))
print(f'{ok / (d["ActualDuration"] / 1e9):8.0f} req/s  p50 {p.get(50, 0):.3f}  p90 {p.get(90, 0):.3f}  p99 {p.get(99, 0):.3f}  p999 {p.get(99.9, 0):.3f} ms')
PY
}

for round in $(seq 1 "$ROUNDS"); do
  order=("${present[@]}")
  if [ $((round % 2)) -eq 0 ]; then
    order=(); for ((i=${#present[@]}-1; i>=0; i--)); do order+=("${present[i]}"); done
  fi
  for ns in "${order[@]}"; do
    for target in local remote; do
      load "$ns" "$target" "$RATE" 16 "$WARMUP" >/dev/null || true   # warm-up, discarded
      for c in $CONNECTIONS; do
        f="$out/${ns}_${target}_c${c}_r${round}.json"
        load "$ns" "$target" "$RATE" "$c" "$DURATION" > "$f"
        printf 'round %s %-26s %-6s c=%-3s ' "$round" "$ns" "$target" "$c"
        summary "$f"
      done
    done
  done
done
