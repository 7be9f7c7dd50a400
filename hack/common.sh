# Shared settings for the local-cluster scripts. Sourced, not run.
RCE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Heavy, reusable builds live outside the checkout, keyed by version.
RCE_CACHE="${RCE_CACHE:-/var/cache/rce}"
# Runtime state of the running local cluster (PKI, etcd data, logs, pids).
RCE_STATE="${RCE_STATE:-/var/lib/rce-local}"
K8S_VERSION="v1.20.2"
K8S_BIN="$RCE_CACHE/kubernetes-$K8S_VERSION-deb-reflect2/bin"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$RCE_CACHE/cargo-target}"

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
