#!/usr/bin/env bash
# hack/clients.sh — the published Judge0 and Piston clients, unchanged, against the running
# shim ($RCE_API, default http://127.0.0.1:8080): PyPI's judge0 (the official SDK),
# judge0-client, judge0api, ultra-piston and aiopyston under pytest; npm's piston-client and
# piston-api-client under node's own test runner; and the Judge0 attribute table
# (tests/clients/test_judge0_attributes.py). See tests/clients/README.md.
#
# The clients are installed from tests/clients/requirements.txt (every package pinned with its
# hash) and tests/clients/package-lock.json into $RCE_CACHE/clients/<hash of those files>/
# (venv/, node/node_modules), outside the checkout, once per version. A shim that does not
# answer fails the run: nothing is skipped.
#
#   hack/clients.sh                 install if needed, then run every client test
#   hack/clients.sh PYTEST-ARGS...  run only the Python tests, with these pytest arguments
#                                   (e.g. -k judge0_sdk, or tests/clients/test_ultra_piston.py)
#   hack/clients.sh --install       install only; print the cache directory
set -euo pipefail
source "$(dirname "$0")/common.sh"
[[ -f "$RCE_STATE/engine.env" && -z "${RCE_API:-}" ]] && source "$RCE_STATE/engine.env"
export RCE_API="${RCE_API:-http://127.0.0.1:8080}"
DIR="$RCE_ROOT/tests/clients"

# The cache key: the lock files and the interpreters they are installed for.
command -v python3 >/dev/null || need_pkgs python3
command -v node >/dev/null || need_pkgs nodejs npm
key="$({ cat "$DIR/requirements.txt" "$DIR/package.json" "$DIR/package-lock.json"
         python3 -c 'import sys; print(sys.version)'; node --version; } | sha256sum | cut -c1-16)"
CACHE="$RCE_CACHE/clients/$key"
VENV="$CACHE/venv"
NODE_MODULES="$CACHE/node/node_modules"

if [[ ! -f "$CACHE/.complete" ]]; then
  log "installing the published clients into $CACHE"
  python3 -c "import venv, ensurepip" 2>/dev/null || need_pkgs python3-venv
  command -v npm >/dev/null || need_pkgs npm
  rm -rf "$CACHE"; mkdir -p "$CACHE/node"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check --require-hashes -r "$DIR/requirements.txt" \
    || die "installing tests/clients/requirements.txt failed"
  cp "$DIR/package.json" "$DIR/package-lock.json" "$CACHE/node/"
  (cd "$CACHE/node" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null) \
    || die "npm ci of tests/clients/package-lock.json failed"
  touch "$CACHE/.complete"
fi
if [[ "${1:-}" == "--install" ]]; then echo "$CACHE"; exit 0; fi

# No shim, no run: fail, naming what is missing.
curl -fsS -o /dev/null --max-time 5 "$RCE_API/about" \
  || die "the shim does not answer at RCE_API=$RCE_API (run: make up; then eval \"\$(make env)\")"

# Nothing is written into the checkout: no bytecode, no pytest cache.
export PYTHONDONTWRITEBYTECODE=1
# The SDK's implicit client must never be its cloud default: point it at the shim too.
export JUDGE0_CE_ENDPOINT="$RCE_API" JUDGE0_CE_AUTH_HEADERS='{}' JUDGE0_SUPPRESS_PREVIEW_WARNING=1
export RCE_CLIENTS_NODE_MODULES="$NODE_MODULES"
status=0
if (($# > 0)); then
  "$VENV/bin/python" -m pytest -c "$DIR/pytest.ini" --rootdir "$DIR" "$@" || status=$?
  exit $status
fi
t0=$SECONDS
log "Python clients and the Judge0 attribute table (pytest, against $RCE_API)"
"$VENV/bin/python" -m pytest -c "$DIR/pytest.ini" --rootdir "$DIR" "$DIR" || status=1
log "npm clients (node --test, against $RCE_API)"
timeout 900 node --test --test-force-exit --test-concurrency=4 "$DIR"/*.test.mjs || status=1
log "client tests finished in $((SECONDS - t0))s (exit $status)"
exit $status
