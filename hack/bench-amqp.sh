#!/usr/bin/env bash
# The RabbitMQ path beside the direct one (for make bench: hack/bench.sh may call it): POST
# /api/execute → 200 (direct: the Execution is stored; broker: the publish is confirmed and the
# consumer has created it) latency p50/p99 and submissions/s, AMQP_BENCH_CLIENTS clients (8),
# AMQP_BENCH_N (60) submissions each, AMQP_BENCH_ROUNDS (2) rounds taking turns, through two release rce-api-shim processes of the
# bench's own (built with --features amqp) and a RabbitMQ broker of its own (own node name,
# ports and data dir; the shared epmd). The Executions are labelled for an operator that does
# not run (rce.dev/operator=<ns>-none): only the submission path is measured, nothing runs;
# they are removed after each path (few at a time: other shims count Pending ones).
# Loopback only.
set -euo pipefail
source "$(dirname "$0")/common.sh"
eval "$("$RCE_ROOT/hack/cluster.sh" env)"
n="${AMQP_BENCH_N:-60}"; clients="${AMQP_BENCH_CLIENTS:-8}"
# AMQP_BENCH_BIN: a release rce-api-shim built with --features amqp already: no build.
[[ -n "${AMQP_BENCH_BIN:-}" ]] || cargo build --release -q -p rce-api-shim --features amqp --bin rce-api-shim
tmp="$(mktemp -d /tmp/rce-bench-amqp.XXXXXX)"
bin="$tmp/rce-api-shim"; cp "${AMQP_BENCH_BIN:-$CARGO_TARGET_DIR/release/rce-api-shim}" "$bin"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
suffix="$(python3 -c "import random, string; print(''.join(random.choices(string.ascii_lowercase, k=8)))")"
ns="amqp-bench-$suffix"; aport="$(free_port)"; dport="$(free_port)"; p1="$(free_port)"; p2="$(free_port)"
pids=()
remove_executions() {
  kubectl -n "$ns" get executions -o name 2>/dev/null \
    | xargs -r -P 4 -n 1 kubectl -n "$ns" patch --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
  kubectl -n "$ns" delete executions --all --wait=false >/dev/null 2>&1 || true
}
cleanup() {
  for p in "${pids[@]}"; do kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  remove_executions
  kubectl delete ns "$ns" --wait=false >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
kubectl create ns "$ns" >/dev/null && kubectl label ns "$ns" rce.dev/test=true >/dev/null
mkdir -p "$tmp/mnesia" "$tmp/log"; echo '[].' > "$tmp/enabled_plugins"
ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT=4369 RABBITMQ_NODENAME="rcebench-$suffix@localhost" \
  RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$aport" RABBITMQ_DIST_PORT="$dport" \
  RABBITMQ_MNESIA_BASE="$tmp/mnesia" RABBITMQ_LOG_BASE="$tmp/log" \
  RABBITMQ_ENABLED_PLUGINS_FILE="$tmp/enabled_plugins" RABBITMQ_CONFIG_FILE="$tmp/rabbitmq" \
  RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" HOME="$tmp" \
  setsid /usr/lib/rabbitmq/bin/rabbitmq-server >"$tmp/rabbitmq.log" 2>&1 </dev/null &
pids+=("$!")
amqp_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$aport" 2>/dev/null; }
for _ in $(seq 1 120); do amqp_open && break; sleep 0.5; done
amqp_open || die "the bench's RabbitMQ did not start: $(tail -5 "$tmp/rabbitmq.log")"
shim() {
  local port="$1"; shift
  RCE_LOG=warn setsid "$bin" --listen "127.0.0.1:$port" --namespace "$ns" --execution-label "rce.dev/operator=$ns-none" \
    --redis-url "${RCE_REDIS_URL:-redis://127.0.0.1:16379}" --max-pending 0 "$@" >"$tmp/shim-$port.log" 2>&1 </dev/null &
  pids+=("$!")
}
shim "$p1"
shim "$p2" --amqp-url "amqp://guest:guest@127.0.0.1:$aport/%2f" --amqp-queue rce.bench
for port in "$p1" "$p2"; do
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break; sleep 0.2; done
  curl -fsS "http://127.0.0.1:$port/ready" >/dev/null || die "the bench's shim on $port is not ready: $(tail -5 "$tmp/shim-$port.log")"
done
log "load before: $(uptime)"
drive() {
  python3 - "$1" "$2" "$n" "$clients" <<'EOF'
import json, sys, time, urllib.request
from concurrent.futures import ThreadPoolExecutor
name, url, n, clients = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
body = json.dumps({"language": "bash", "code": "true"}).encode()
def post(_):
    t = time.perf_counter()
    req = urllib.request.Request(url + "/api/execute", data=body, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            ok = r.status == 200 and json.load(r).get("jobId")
    except Exception:
        ok = False
    return (time.perf_counter() - t) if ok else None
for _ in range(3):
    post(0)
start = time.perf_counter()
with ThreadPoolExecutor(clients) as pool:
    res = list(pool.map(post, range(n)))
elapsed = time.perf_counter() - start
lat = sorted(x for x in res if x is not None)
pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1e3 if lat else float("nan")
print(f"{name} POST /api/execute → 200: n={len(lat)} with {clients} clients in {elapsed:.1f} s = "
      f"{len(lat) / elapsed:.1f}/s; p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms; {n - len(lat)} errors")
EOF
}
# Taking turns, AMQP_BENCH_ROUNDS (2) rounds: neither path gets the warm caches alone.
for _ in $(seq 1 "${AMQP_BENCH_ROUNDS:-2}"); do
  drive "direct" "http://127.0.0.1:$p1"
  remove_executions
  drive "broker" "http://127.0.0.1:$p2"
  remove_executions
done
log "load after: $(uptime)"
