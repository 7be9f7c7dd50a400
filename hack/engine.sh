#!/usr/bin/env bash
# The rce engine on the running local cluster: sandbox images, CRDs, Runtimes, the operator
# and the REST shim.
#
#   engine.sh up      build (cached), import, apply, start; wait until all answer
#   engine.sh down    stop the operators and the shim (recorded pids)
#   engine.sh status  exit 1 unless all run
#
# RCE_OPERATOR_REPLICAS=N (default 1) starts N operator processes: the first is `operator`
# (metrics on RCE_OPERATOR_METRICS, 127.0.0.1:9464), operator i >= 2 is `operator-<i>` with
# metrics on the next ports (127.0.0.1:9465, ...); each gets RCE_IDENTITY=operator-<i>.
set -euo pipefail
source "$(dirname "$0")/common.sh"
export KUBECONFIG="$RCE_STATE/kubeconfig"
REDIS_URL="redis://127.0.0.1:${RCE_REDIS_PORT:-16379}"
OPERATOR_METRICS="${RCE_OPERATOR_METRICS:-127.0.0.1:9464}"
REPLICAS="${RCE_OPERATOR_REPLICAS:-1}"
# How many operators `up` started (for down and status with another RCE_OPERATOR_REPLICAS).
REPLICAS_FILE="$RCE_STATE/operator-replicas"
SHIM_LISTEN="${RCE_SHIM_LISTEN:-127.0.0.1:8080}"
# Result callbacks (Judge0's callback_url) of the local engine may reach 127.0.0.1 only: the
# suite's callback tests start their listener there. Set RCE_CALLBACK_ALLOW= (empty) to turn
# callbacks off; the chart's default is off.
CALLBACK_ALLOW="${RCE_CALLBACK_ALLOW-127.0.0.1/32}"
# debug by default: `make test` builds the same artifacts for the tests, so the engine costs
# no second compile; RCE_PROFILE=release for benchmarks.
PROFILE="${RCE_PROFILE:-debug}"
BIN="$CARGO_TARGET_DIR/$([[ $PROFILE == release ]] && echo release || echo debug)"

operator_proc() { if (($1 == 1)); then echo operator; else echo "operator-$1"; fi; }
operator_metrics() { echo "${OPERATOR_METRICS%:*}:$((${OPERATOR_METRICS##*:} + $1 - 1))"; }
# The operators to stop or show: those `up` started, those that run, RCE_OPERATOR_REPLICAS.
operator_count() {
  local n="$REPLICAS" f i
  [[ -f "$REPLICAS_FILE" ]] && (($(cat "$REPLICAS_FILE") > n)) && n="$(cat "$REPLICAS_FILE")"
  for f in "$PIDS"/operator-*.pid; do
    [[ -f "$f" ]] || continue
    i="${f##*/operator-}"; i="${i%.pid}"
    [[ "$i" =~ ^[0-9]+$ ]] && ((i > n)) && n="$i"
  done
  echo "$n"
}

wait_http() { # NAME URL TIMEOUT
  local deadline=$((SECONDS + $3))
  until curl -fsS -o /dev/null "$2"; do
    alive "$1" || { tail -n 25 "$LOGS/$1.log" >&2; die "$1 exited; log: $LOGS/$1.log"; }
    ((SECONDS < deadline)) || die "$1 did not answer on $2 within $3s; log: $LOGS/$1.log"
    sleep 0.3
  done
}

cmd_up() {
  log "building the operator and the shim ($PROFILE)"
  cargo build $([[ $PROFILE == release ]] && echo --release) -q -p rce-operator -p rce-api-shim --bins
  if [[ -z "${RCE_SKIP_IMAGES:-}" ]]; then
    "$RCE_ROOT/sandbox-images/build.sh" --import
  fi
  kubectl apply --server-side --force-conflicts -f "$RCE_ROOT/crds/rce.dev.yaml" >/dev/null
  kubectl wait --for condition=established --timeout=60s crd/executions.rce.dev crd/runtimes.rce.dev >/dev/null
  if [[ -f "$RCE_CACHE/images/runtimes.yaml" ]]; then
    kubectl apply --server-side --force-conflicts -f "$RCE_CACHE/images/runtimes.yaml" >/dev/null
    log "runtimes: $(kubectl get runtimes -o name | wc -l)"
  fi
  [[ "$REPLICAS" =~ ^[1-9][0-9]*$ ]] || die "RCE_OPERATOR_REPLICAS=$REPLICAS: a number >= 1"
  echo "$REPLICAS" > "$REPLICAS_FILE"
  local i
  for ((i = 1; i <= REPLICAS; i++)); do
    NO_COLOR=1 RCE_LOG="${RCE_LOG:-info}" RCE_REDIS_URL="$REDIS_URL" RCE_METRICS_ADDR="$(operator_metrics "$i")" \
      RCE_IMAGE_PULL_POLICY=Never RCE_CALLBACK_ALLOW="$CALLBACK_ALLOW" RCE_IDENTITY="operator-$i" \
      start "$(operator_proc "$i")" "$BIN/rce-operator"
  done
  for ((i = 1; i <= REPLICAS; i++)); do
    wait_http "$(operator_proc "$i")" "http://$(operator_metrics "$i")/healthz" 60
  done
  NO_COLOR=1 RCE_LOG="${RCE_LOG:-info}" RCE_REDIS_URL="$REDIS_URL" RCE_SHIM_LISTEN="$SHIM_LISTEN" \
    RCE_CALLBACK_ALLOW="$CALLBACK_ALLOW" start shim "$BIN/rce-api-shim"
  wait_http shim "http://$SHIM_LISTEN/health" 60
  echo "http://$SHIM_LISTEN" > "$RCE_STATE/api-url"
  printf 'export RCE_API=http://%s\nexport RCE_OPERATOR_METRICS=http://%s\nexport RCE_OPERATOR_REPLICAS=%s\n' \
    "$SHIM_LISTEN" "$OPERATOR_METRICS" "$REPLICAS" > "$RCE_STATE/engine.env"
  local more=""
  for ((i = 2; i <= REPLICAS; i++)); do more+="  $(operator_proc "$i"): $(operator_metrics "$i")"; done
  cat >&2 <<EOF

  rce REST API     http://$SHIM_LISTEN     (playground at /, OpenAPI at /openapi.json)
  operator         http://$OPERATOR_METRICS/metrics$more
  Try:             curl -s -X POST http://$SHIM_LISTEN/api/execute -H 'content-type: application/json' \\
                     -d '{"language":"python","code":"print(6*7)"}'
EOF
}

cmd_down() {
  local i
  stop shim
  for ((i = $(operator_count); i >= 1; i--)); do stop "$(operator_proc "$i")"; done
  rm -f "$RCE_STATE/api-url" "$RCE_STATE/engine.env" "$REPLICAS_FILE"
}
cmd_status() {
  local bad=0 i n names=()
  for ((i = 1; i <= $(operator_count); i++)); do names+=("$(operator_proc "$i")"); done
  for n in "${names[@]}" shim; do
    if alive "$n"; then printf '%-24s running  pid %s\n' "$n" "$(cat "$(pidfile "$n")")"
    else printf '%-24s STOPPED  log %s\n' "$n" "$LOGS/$n.log"; bad=1; fi
  done
  return $bad
}

case "${1:-}" in
  up) cmd_up;; down) cmd_down;; status) cmd_status;;
  *) echo "usage: $0 up|down|status" >&2; exit 2;;
esac
