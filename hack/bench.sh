#!/usr/bin/env bash
# make bench: end-to-end figures on the running engine (make up first; RCE_PROFILE=release
# make up for figures worth quoting).
#   BENCH_ARGS="-n 20 --parallel 5 --language python" make bench   runs one custom round instead.
#   BENCH_N=100 (default 100): rounds of the side-by-side latency comparison.
set -euo pipefail
source "$(dirname "$0")/common.sh"
"$RCE_ROOT/hack/cluster.sh" status >/dev/null && "$RCE_ROOT/hack/engine.sh" status >/dev/null \
  || die "the engine is not running: make up"
eval "$("$RCE_ROOT/hack/cluster.sh" env)"
cargo build --release -q -p rce-operator --bin rce-bench
bench="$CARGO_TARGET_DIR/release/rce-bench"
if [[ $# -gt 0 ]]; then exec "$bench" "$@"; fi
n="${BENCH_N:-100}"
variants=(--variant pod --variant rce)
if kubectl get runtimeclass gvisor >/dev/null 2>&1; then variants+=(--variant pod-gvisor --variant gvisor); fi
log "latency, one at a time: the raw Pod floor beside rce, on runc and under gVisor, $n rounds"
"$bench" -n "$n" "${variants[@]}"
log "throughput: a burst of 50 raw Pods (the floor), then 50 Executions"
"$bench" -n 50 --parallel 50 --raw-pods
"$bench" -n 50 --parallel 50
# The shim alone: GET /api/status under load, POST -> Execution created.
"$RCE_ROOT/hack/bench-shim.sh"
