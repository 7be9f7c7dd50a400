#!/usr/bin/env bash
# The REST shim alone (called by make bench): GET /api/status requests/s and p50/p99 under
# load from a local load generator, and POST /api/execute → Execution created p50/p99.
# Loopback only; bounded in time and count.
#   SHIM_BENCH_ARGS="--seconds 20 --concurrency 64 --creates 50" hack/bench-shim.sh
set -euo pipefail
source "$(dirname "$0")/common.sh"
url="${RCE_API:-}"
[[ -z "$url" && -f "$RCE_STATE/api-url" ]] && url="$(cat "$RCE_STATE/api-url")"
url="${url:-http://127.0.0.1:8080}"
curl -fsS "$url/health" >/dev/null || die "the shim does not answer at $url: make up"
cargo build --release -q -p rce-api-shim --example shim_bench
# shellcheck disable=SC2086
"$CARGO_TARGET_DIR/release/examples/shim_bench" --url "$url" ${SHIM_BENCH_ARGS:-}
