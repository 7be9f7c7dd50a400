#!/usr/bin/env bash
# hack/bench-compare.sh REV [N]: cold latency of this checkout's engine beside revision REV's,
# N rounds (default 100), the two (and the raw Pod floor) taking turns one at a time on the
# running cluster (make up first).
#
# REV's operator is built from a git worktree into its own target dir (release) and run beside
# the engine's, serving only Executions labelled rce.dev/operator=baseline. Its sandboxes use
# REV's image of the language, BASELINE_IMAGE (required: the ref REV's build gave it, still in
# containerd after a make up of REV; `ctr -n k8s.io images ls -q | grep sandbox-python`), through
# a Runtime <lang>-baseline.
set -euo pipefail
source "$(dirname "$0")/common.sh"
rev="${1:?usage: BASELINE_IMAGE=rce.dev/sandbox-python:TAG hack/bench-compare.sh REV [N]}"; n="${2:-100}"
image="${BASELINE_IMAGE:?set BASELINE_IMAGE to the image REV built for the language}"
lang="${BENCH_LANG:-python}"
eval "$("$RCE_ROOT/hack/cluster.sh" env)"
ctr -a /run/containerd/containerd.sock -n k8s.io images ls -q | grep -qxF "$image" || die "$image is not in containerd"
wt="$RCE_CACHE/worktree-baseline"; target="$RCE_CACHE/cargo-target-baseline"
git -C "$RCE_ROOT" worktree remove -f "$wt" 2>/dev/null || true
git -C "$RCE_ROOT" worktree add -f --detach "$wt" "$rev" >/dev/null
log "building $rev's operator (release)"
(cd "$wt" && CARGO_TARGET_DIR="$target" cargo build --release -q -p rce-operator --bin rce-operator)
kubectl get runtime "$lang" -o json \
  | jq --arg img "$image" --arg name "$lang-baseline" '.metadata = {name: $name} | .spec.image = $img | .spec.aliases = [] | del(.status)' \
  | kubectl apply -f - >/dev/null
NO_COLOR=1 RCE_LOG=warn RUST_LOG=warn RCE_METRICS_ADDR=127.0.0.1:9465 RCE_SELECTOR=rce.dev/operator=baseline \
  RCE_IMAGE_PULL_POLICY=Never RCE_REDIS_URL="redis://127.0.0.1:${RCE_REDIS_PORT:-16379}" \
  start operator-baseline "$target/release/rce-operator"
cleanup() {
  stop operator-baseline
  kubectl delete runtime "$lang-baseline" >/dev/null 2>&1 || true
  git -C "$RCE_ROOT" worktree remove -f "$wt" 2>/dev/null || true
}
trap cleanup EXIT
sleep 3
cargo build --release -q -p rce-operator --bin rce-bench
"$CARGO_TARGET_DIR/release/rce-bench" -n "$n" --variant "baseline=exec:$lang-baseline:baseline" \
  --variant "this=exec:$lang" --variant pod
