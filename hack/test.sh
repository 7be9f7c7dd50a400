#!/usr/bin/env bash
# make test: the whole suite. Uses the cluster KUBECONFIG points at when it is reachable
# (kind, k3s, or an already running local cluster); otherwise brings the local one up first,
# and takes down at the end what it brought up. Nothing is skipped: a cluster that cannot
# start fails the run, naming the part that failed.
set -euo pipefail
source "$(dirname "$0")/common.sh"
t0=$SECONDS
# The playground's end-to-end test drives Debian's Chromium headless.
need_pkgs chromium chromium-driver
started=0
if [[ -n "${KUBECONFIG:-}" ]] && kubectl get --raw /readyz >/dev/null 2>&1; then
  log "using the cluster of KUBECONFIG=$KUBECONFIG"
elif "$RCE_ROOT/hack/cluster.sh" status >/dev/null 2>&1 && "$RCE_ROOT/hack/engine.sh" status >/dev/null 2>&1; then
  log "using the running local cluster"
else
  started=1
  trap '"$RCE_ROOT/hack/down.sh" || true' EXIT
  "$RCE_ROOT/hack/up.sh" || die "bringing the local cluster up failed (see the messages above)"
fi
# The local cluster has RCE_NODES nodes (default 2; tests/tests/nodes.rs needs two): add those
# a running one lacks (cluster.sh up leaves what runs alone).
if ((started == 0)) && [[ "${KUBECONFIG:-$RCE_STATE/kubeconfig}" == "$RCE_STATE/kubeconfig" ]] &&
  "$RCE_ROOT/hack/cluster.sh" status >/dev/null 2>&1; then
  have="$(kubectl --kubeconfig "$RCE_STATE/kubeconfig" get nodes --no-headers 2>/dev/null | wc -l)"
  if ((have < RCE_NODES)); then
    log "the local cluster has $have node(s), RCE_NODES=$RCE_NODES: adding the others"
    "$RCE_ROOT/hack/cluster.sh" up || die "adding nodes to the local cluster failed (see the messages above)"
  fi
fi
eval "$("$RCE_ROOT/hack/cluster.sh" env)"
[[ -f "$RCE_STATE/engine.env" ]] && source "$RCE_STATE/engine.env"

log "checking formatting, lints and the committed CRDs"
cargo fmt --all -- --check || die "cargo fmt found unformatted code (run: cargo fmt --all)"
cargo clippy --workspace --all-targets --all-features -q -- -D warnings || die "clippy found problems"
diff -u "$RCE_ROOT/crds/rce.dev.yaml" <(cargo run -q -p rce-operator --bin crdgen) \
  || die "crds/rce.dev.yaml drifted from the Rust types (run: make crds)"

log "running the test suite"
# The chart tests (tests/tests/helm_chart.rs) render through the Helm SDK in this virtualenv.
RCE_HELM_PYTHON="$("$RCE_ROOT/hack/helm-venv.sh")" || die "preparing the Helm SDK virtualenv failed (hack/helm-venv.sh)"
export RCE_HELM_PYTHON
status=0
cargo test --workspace --all-features --no-fail-fast -- --test-threads="${RCE_TEST_THREADS:-4}" || status=$?
log "running the Helm chart's install/upgrade/uninstall test on the cluster (real Helm engine)"
"$RCE_ROOT/hack/helm-test.sh" || status=1
log "running the published Judge0 and Piston clients, unchanged, against the shim (hack/clients.sh)"
"$RCE_ROOT/hack/clients.sh" || status=1
# Namespaces of failed tests.
kubectl delete ns -l rce.dev/test=true --wait=false >/dev/null 2>&1 || true
log "test suite finished in $((SECONDS - t0))s (exit $status)"
exit $status
