#!/usr/bin/env bash
# make bench: end-to-end figures on the running engine (make up first).
#   BENCH_ARGS="-n 20 -c 5 -l python" make bench   runs one custom round instead.
set -euo pipefail
source "$(dirname "$0")/common.sh"
"$RCE_ROOT/hack/cluster.sh" status >/dev/null && "$RCE_ROOT/hack/engine.sh" status >/dev/null \
  || die "the engine is not running: make up"
eval "$("$RCE_ROOT/hack/cluster.sh" env)"
cargo build --release -q -p rce-tests --bin rce-bench
bench="$CARGO_TARGET_DIR/release/rce-bench"
if [[ $# -gt 0 ]]; then exec "$bench" "$@"; fi
"$bench" -n 10 -c 1           # sequential: one at a time
"$bench" -n 50 -c 50          # a burst of 50 at once
if [[ -x "$RCE_ROOT/hack/bench-shim.sh" ]]; then "$RCE_ROOT/hack/bench-shim.sh"; fi
