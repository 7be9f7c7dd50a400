#!/usr/bin/env bash
# make bench: end-to-end figures on the running cluster (make up first), release build.
#   BENCH_ARGS="-n 20 --parallel 5 --language python" make bench   runs one custom round instead.
#   BENCH_N=100 (default 100): rounds of the side-by-side latency comparison.
#   BENCH_THROUGHPUT_N=200 (default 200): Executions of each 8-client throughput run.
#   BENCH_THROUGHPUT_POOL=12 (default 12): Pods of the reuse pool under 8 clients (with only 8, a
#     client's next Execution often comes before its last Pod is back, and misses run cold).
#   BENCH_GVISOR=1: add the gVisor variants (raw Pod and Execution) to the comparison.
#
# The warm and cold variants are served by operator processes of the bench's own (this
# checkout's release rce-operator, its default flags but for --namespaces, --selector and
# --metrics-addr), each in a namespace of its own with the WarmPool it measures; the Judge0
# figure goes through a release rce-api-shim of the bench's own in front of a warm pool. So
# the figures are the release build's whatever profile `make up` ran, and the shared engine
# is left alone. The operators' debug logs (the `warm run` timings) stay in BENCH_LOG_DIR.
set -euo pipefail
source "$(dirname "$0")/common.sh"
"$RCE_ROOT/hack/cluster.sh" status >/dev/null && "$RCE_ROOT/hack/engine.sh" status >/dev/null \
  || die "the engine is not running: make up"
eval "$("$RCE_ROOT/hack/cluster.sh" env)"
# BENCH_BIN: an rce-bench built already (its rce-operator and rce-api-shim beside it): no build.
if [[ -z "${BENCH_BIN:-}" ]]; then
  cargo build --release -q -p rce-operator --bin rce-bench --bin rce-operator -p rce-api-shim --bin rce-api-shim
fi
bench="${BENCH_BIN:-$CARGO_TARGET_DIR/release/rce-bench}"
logs="${BENCH_LOG_DIR:-$RCE_STATE/logs/bench}"
mkdir -p "$logs"
bench() { "$bench" --log-dir "$logs" "$@"; }
if [[ $# -gt 0 ]]; then bench "$@"; exit; fi
n="${BENCH_N:-100}"
tn="${BENCH_THROUGHPUT_N:-200}"
log "load before: $(uptime)"
variants=(--variant pod --variant cold --variant warm --variant warm-reuse)
if [[ "${BENCH_GVISOR:-0}" == 1 ]] && kubectl get runtimeclass gvisor >/dev/null 2>&1; then
  variants+=(--variant pod-gvisor --variant gvisor)
fi
log "latency, one at a time, $n rounds taking turns: the raw Pod floor, cold, warm (a pool of 4, one run per Pod), warm with reuse (a pool of 4, maxRuns 1000)"
bench -n "$n" --pool-replicas 4 "${variants[@]}"
log "Judge0 POST /submissions?wait=true, one at a time, through a shim of the bench's own: a warm pool of 4 with reuse (maxRuns 1000), back to back"
bench -n "$n" --judge0 --pool-replicas 4 --judge0-max-runs 1000
log "the same, a pool of 4 without reuse, 700 ms between submissions (what its refills sustain)"
bench -n "$n" --judge0 --pool-replicas 4 --pause-ms 700
tp="${BENCH_THROUGHPUT_POOL:-12}"
log "throughput: 8 clients, $tn Executions: warm with reuse (a pool of $tp, maxRuns 1000), then cold"
bench -n "$tn" --parallel 8 --throughput warm-reuse --pool-replicas "$tp"
bench -n "$tn" --parallel 8 --throughput cold
log "throughput: a burst of 50 raw Pods (the floor)"
bench -n 50 --parallel 50 --raw-pods
# Judging (issue 13): 50 C++ test cases as one Execution (one compile) vs 50 Executions.
# BENCH_JUDGING=0: skip.
if [[ "${BENCH_JUDGING:-1}" != 0 ]]; then
  log "judging: a C++ submission with ${BENCH_JUDGING_N:-50} test cases, one Execution vs as many separate ones, cold"
  "$RCE_ROOT/hack/bench-judging.sh"
fi
# Scale-out (issue 12): the same burst of cold Executions through operators of the bench's
# own, 1 replica vs 3 all-active ones, on every node and then on node 1 alone (the extra
# nodes cordoned, as an operator would drain them), beside the raw Pod burst of the same
# size on the same nodes. BENCH_SCALE=0: skip. BENCH_SCALE_N (default 120) at once.
if [[ "${BENCH_SCALE:-1}" != 0 ]]; then
  sn="${BENCH_SCALE_N:-120}"
  extra_nodes=$(kubectl get nodes -o name | grep -v '^node/rce-node$' || true)
  log "scale-out, all $(kubectl get nodes -o name | wc -l) nodes: $sn cold Executions at once, 1 operator replica, then 3; the raw Pod burst"
  bench -n "$sn" --parallel "$sn" --throughput cold --operator-replicas 1
  bench -n "$sn" --parallel "$sn" --throughput cold --operator-replicas 3
  bench -n "$sn" --parallel "$sn" --raw-pods
  if [[ -n "$extra_nodes" ]]; then
    uncordon() { for n in $extra_nodes; do kubectl uncordon "${n#node/}" >/dev/null 2>&1 || true; done; }
    trap uncordon EXIT
    for n in $extra_nodes; do kubectl cordon "${n#node/}" >/dev/null; done
    log "scale-out, node 1 alone (the others cordoned): the same"
    bench -n "$sn" --parallel "$sn" --throughput cold --operator-replicas 1
    bench -n "$sn" --parallel "$sn" --throughput cold --operator-replicas 3
    bench -n "$sn" --parallel "$sn" --raw-pods
    uncordon; trap - EXIT
  fi
fi
# The RabbitMQ path beside the direct one (submission to stored Execution), BENCH_AMQP=0: skip.
if [[ "${BENCH_AMQP:-1}" != 0 ]]; then
  log "submissions: the broker path (publish confirmed, consumer created the Execution) beside the direct one"
  "$RCE_ROOT/hack/bench-amqp.sh"
fi
log "attach vs exec on an idle warm Pod, 50 of each"
bench -n 50 --attach-exec
log "load after: $(uptime)"
# The shim alone: GET /api/status under load, POST -> Execution created (BENCH_SHIM=0: not).
if [[ "${BENCH_SHIM:-1}" != 0 ]]; then "$RCE_ROOT/hack/bench-shim.sh"; fi
