# Shared settings for the local-cluster scripts. Sourced, not run.
RCE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Heavy, reusable builds live outside the checkout, keyed by version.
RCE_CACHE="${RCE_CACHE:-/var/cache/rce}"
# Runtime state of the running local cluster (PKI, etcd data, logs, pids).
RCE_STATE="${RCE_STATE:-/var/lib/rce-local}"
K8S_VERSION="v1.20.2"
K8S_BIN="$RCE_CACHE/kubernetes-$K8S_VERSION-deb-reflect2/bin"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$RCE_CACHE/cargo-target}"

# Nodes of the local cluster (hack/cluster.sh). Node 1 is `rce-node`, as ever; every extra node
# (rce-node-2, rce-node-3, ...) is a kubelet with a containerd of its own on this same machine.
RCE_NODES="${RCE_NODES:-2}"
RCE_MAX_NODES=8
node_name() { if (($1 == 1)); then echo rce-node; else echo "rce-node-$1"; fi; }
node_index() {
  case "$1" in
    rce-node) echo 1;;
    rce-node-[2-9]) echo "${1#rce-node-}";;
    *) return 1;;
  esac
}
# Where an extra node keeps its containerd, kubelet, CNI and pod logs.
node_dir() { echo "$RCE_STATE/nodes/$1"; }
node_sock() {
  if [[ $1 == rce-node ]]; then echo /run/containerd/containerd.sock; else echo "/run/containerd-$1/containerd.sock"; fi
}
# The pid (and log) name of a node's COMPONENT (containerd, kubelet): node 1's keep their names.
node_proc() { if [[ $2 == rce-node ]]; then echo "$1"; else echo "$1-$2"; fi; }
# The extra nodes this state dir has (whether running or not), in index order.
extra_nodes() {
  local d
  for d in "$RCE_STATE"/nodes/rce-node-*/; do if [[ -d $d ]]; then basename "$d"; fi; done | sort -t- -k3 -n
}
# Every node whose containerd answers, as "NAME SOCKET" lines: where images go.
node_sockets() {
  local n
  for n in rce-node $(extra_nodes); do
    ctr -a "$(node_sock "$n")" version >/dev/null 2>&1 && echo "$n $(node_sock "$n")"
  done
  return 0
}

log() { printf '[rce %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[rce %s] ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2; exit 1; }

# need_pkgs PKG...: install the Debian packages that are missing.
need_pkgs() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  log "installing Debian packages: ${missing[*]}"
  if [[ ! -f "$RCE_CACHE/.apt-updated" ]] || [[ -n "$(find "$RCE_CACHE/.apt-updated" -mmin +720)" ]]; then
    apt-get update -qq; mkdir -p "$RCE_CACHE"; touch "$RCE_CACHE/.apt-updated"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Processes started by the scripts: one pid file and one log per component, under RCE_STATE.
LOGS="$RCE_STATE/logs"; PIDS="$RCE_STATE/pids"
pidfile() { echo "$PIDS/$1.pid"; }
alive() { local f; f="$(pidfile "$1")"; [[ -f "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null; }

# start NAME CMD...: run CMD in the background in a session of its own, with its log; record
# its pid (which is also its process group id).
start() {
  local name="$1"; shift
  if alive "$name"; then log "$name already running (pid $(cat "$(pidfile "$name")"))"; return 0; fi
  mkdir -p "$LOGS" "$PIDS"
  log "starting $name (log: $LOGS/$name.log)"
  setsid "$@" >>"$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! > "$(pidfile "$name")"
}

# stop NAME: TERM the recorded process group, KILL what is left after 10 s; forget the pid.
# The group signal also reaches helpers a component forked (rabbitmq's beam.smp, say).
stop() {
  local name="$1" f pid
  f="$(pidfile "$name")"
  [[ -f "$f" ]] || return 0
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $name (pid $pid)"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name did not stop on TERM; killing"; kill -KILL "$pid" 2>/dev/null || true
    fi
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}
