#!/usr/bin/env bash
# make bench: end-to-end figures on the running engine (make up first).
#   BENCH_ARGS="-n 20 --parallel 5 --language python" make bench   runs one custom round instead.
set -euo pipefail
source "$(dirname "$0")/common.sh"
"$RCE_ROOT/hack/cluster.sh" status >/dev/null && "$RCE_ROOT/hack/engine.sh" status >/dev/null \
  || die "the engine is not running: make up"
eval "$("$RCE_ROOT/hack/cluster.sh" env)"
cargo build --release -q -p rce-operator --bin rce-bench
bench="$CARGO_TARGET_DIR/release/rce-bench"
if [[ $# -gt 0 ]]; then exec "$bench" "$@"; fi
"$bench" -n 10 --parallel 1       # sequential: one at a time
"$bench" -n 50 --parallel 50      # a burst of 50 at once
# The shim alone: GET /api/status under load, POST -> Execution created.
"$RCE_ROOT/hack/bench-shim.sh"
