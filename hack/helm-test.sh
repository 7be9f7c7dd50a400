#!/usr/bin/env bash
# hack/helm-test.sh — the chart on a real cluster, through the real Helm v4 engine
# (hack/helm-sdk.py, the public API of helm-python-sdk): build and import the operator and
# shim images, install into fresh namespaces (hostNetwork, the host's Redis), check what runs
# and what the service accounts may do, run an Execution through the release's operator and
# shim, upgrade the release (operator logs as JSON, another maxRunning) and check that it took
# effect and still serves, scale the operator 1 -> 3 -> 1 with `helm upgrade` (replicas ready,
# the policy/v1beta1 PodDisruptionBudget of 1.20, one membership Lease per replica when the
# operator has them, serving at 3 and after; a second release), then drain, uninstall and
# check that the releases' objects are gone. Lint, schema and render checks are Rust tests: cargo test -p
# rce-tests --test helm_chart.
#
#   hack/helm-test.sh [--no-build]     (--no-build: package the binaries already built)
#
# HELM_TEST_PREFIX (default rce-helmtest) prefixes the release namespaces.
#
# Uses KUBECONFIG, or the local cluster's. Ends with `N passed, M failed, K skipped`; exits 1
# when anything failed.
set -euo pipefail
source "$(dirname "$0")/common.sh"
build=(); [[ "${1:-}" == --no-build ]] && build=(--no-build)
PY="$("$RCE_ROOT/hack/helm-venv.sh")"
export KUBECONFIG="${KUBECONFIG:-$RCE_STATE/kubeconfig}"
sdk() { "$PY" "$RCE_ROOT/hack/helm-sdk.py" "$@"; }
tmp="$(mktemp -d)"
sfx="$(tr -dc a-z0-9 </dev/urandom | head -c5 || true)"
rel="helmtest-$sfx"; ns="${HELM_TEST_PREFIX:-rce-helmtest}-$sfx"; sb="$ns-sb"; full="$rel-rce"; runtime="$rel-python"
port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
mport="$(port)"; sport="$(port)"
cleanups=("$rel $ns $sb")

passed=0; skipped=0; failed=(); ok=0
# check NAME FUNCTION...: run it in a subshell under `set -e` (any failing command fails the
# check; its output is shown then); sets ok=1 when it passed.
check() {
  local name="$1" t0=$SECONDS rc; shift
  set +e; ( set -eo pipefail; "$@" ) >"$tmp/out" 2>&1; rc=$?; set -e
  if ((rc == 0)); then passed=$((passed + 1)); ok=1; echo "ok   - $name ($((SECONDS - t0))s)"
  else failed+=("$name"); ok=0; echo "FAIL - $name ($((SECONDS - t0))s)"; tail -n 40 "$tmp/out" | sed 's/^/    /'; fi
}
want() { [[ "$3" == "$2" ]] || { echo "$1: expected '$2', got '$3'"; return 1; }; }
http() { curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$1" || true; }
# in_containerd REF [SOCKET]: the image is in that node's containerd (default: node 1's).
in_containerd() { ctr -a "${2:-/run/containerd/containerd.sock}" -n k8s.io images ls -q | grep -xF "$1" >/dev/null; }  # not -q: no SIGPIPE for ctr
# Every node's containerd socket (node 1 and the extra nodes of RCE_NODES).
sockets() { node_sockets | awk '{print $2}'; }
finish() {
  trap - EXIT
  cleanup
  ((${#failed[@]})) && printf 'failed: %s\n' "$(IFS=';'; echo "${failed[*]}")"
  echo "$passed passed, ${#failed[@]} failed, $skipped skipped (${SECONDS}s)"
  rm -rf "$tmp"
  exit $((${#failed[@]} > 0))
}
cleanup() {  # whatever happened above, for each release of the run
  local r n b
  for entry in "${cleanups[@]}"; do
    read -r r n b <<<"$entry"
    sdk uninstall "$r" --namespace "$n" --ignore-not-found --timeout 120 >/dev/null 2>&1 || true
    kubectl delete ns "$n" "$b" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  done
}
trap 'failed+=("interrupted"); finish' EXIT

log "Helm SDK $(sdk info) against KUBECONFIG=$KUBECONFIG"
check "the cluster answers" kubectl get --raw /readyz
((ok)) || finish

dry_run() {
  # The default (non-hostNetwork) render, bundled Redis included, through the API server's
  # validation without creating anything; into `default`, with Runtime names of its own.
  sdk chart | jq --arg p "dryrun-$sfx-" '{sandbox: {namespace: "default", createNamespace: false},
    operator: {metricsService: true}, runtimes: [.values.runtimes[] | .name = $p + .name]}' > "$tmp/dry.json"
  sdk render --yaml --name "dryrun-$sfx" --namespace default --values "$tmp/dry.json" > "$tmp/dry.yaml"
  kubectl apply --server-side --dry-run=server --field-manager=rce-helm-test -f "$tmp/dry.yaml" > "$tmp/dry.out"
  want "objects accepted" "$(grep -c '^kind:' "$tmp/dry.yaml")" "$(wc -l < "$tmp/dry.out")"
}
check "the default render passes the API server's validation (server-side dry run)" dry_run

dry_run_replicas() {
  # Three operators and three shims, rendered with this cluster's capabilities (on 1.20:
  # policy/v1beta1 budgets), through the API server's validation.
  echo '{"sandbox": {"namespace": "default", "createNamespace": false}, "operator": {"replicas": 3},
    "shim": {"replicas": 3}, "runtimes": []}' > "$tmp/dry3.json"
  sdk render --cluster --yaml --name "dryrun3-$sfx" --namespace default --values "$tmp/dry3.json" > "$tmp/dry3.yaml"
  local want_api=policy/v1beta1
  kubectl api-versions | grep -qx policy/v1 && want_api=policy/v1
  want "PodDisruptionBudgets (operator, shim)" "$want_api $want_api" \
    "$(yq_kinds PodDisruptionBudget < "$tmp/dry3.yaml" | tr '\n' ' ' | sed 's/ $//')"
  want "Deployments with a topology spread (operator, shim)" 2 "$(grep -c 'topologyKey: kubernetes.io/hostname' "$tmp/dry3.yaml")"
  kubectl apply --server-side --dry-run=server --field-manager=rce-helm-test -f "$tmp/dry3.yaml" > "$tmp/dry3.out"
  want "objects accepted" "$(grep -c '^kind:' "$tmp/dry3.yaml")" "$(wc -l < "$tmp/dry3.out")"
  grep -q poddisruptionbudget "$tmp/dry3.out"
}
# The apiVersion of every document of kind $1 in a YAML stream (top-level keys of each document).
yq_kinds() { awk -v k="$1" '/^---/ {if (kind == k) print api; kind = ""; api = ""; next}
  /^kind: / {kind = $2} /^apiVersion: / {api = $2} END {if (kind == k) print api}'; }
check "the 3-replica render on this cluster (its PDB apiVersion, topology spread) passes the API server's validation" dry_run_replicas

images() {
  "$RCE_ROOT/hack/operator-image.sh" --import "${build[@]}"  # into node 1's containerd
  local sock
  while IFS=$'\t' read -r _ ref tar; do
    for sock in $(sockets); do  # and every other node's: replicas run on any of them
      [[ "$sock" == /run/containerd/containerd.sock ]] || ctr -a "$sock" -n k8s.io images import "$tar" >/dev/null
      in_containerd "$ref" "$sock" || { echo "$ref is not in $sock after the import"; exit 1; }
    done
  done < "$RCE_CACHE/images/engine-index.tsv"
  echo "nodes: $(sockets | wc -l)"
}
check "operator and shim images built and imported into every node (hack/operator-image.sh)" images
((ok)) || finish
tag="$(awk -F'\t' '$1 == "rce-operator" {sub(/.*:/, "", $2); print $2}' "$RCE_CACHE/images/engine-index.tsv")"
[[ -n "$tag" && "$tag" != latest ]] || { failed+=("operator image tag is '$tag', not a pinned one"); finish; }
read -r _ py_ref py_tar < <(awk -F'\t' '$1 == "python"' "$RCE_CACHE/images/index.tsv" 2>/dev/null) || true

sandbox_image() {
  [[ -n "${py_ref:-}" ]] || { echo "no python image in $RCE_CACHE/images/index.tsv (make images)"; exit 1; }
  local sock
  for sock in $(sockets); do
    in_containerd "$py_ref" "$sock" || ctr -a "$sock" -n k8s.io images import "$py_tar" >/dev/null
    in_containerd "$py_ref" "$sock"
  done
}
check "the python sandbox image is in every node's containerd" sandbox_image
have_image=$ok

server="$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
api_host="$(sed -E 's#^https://([^:/]+).*#\1#' <<<"$server")"; api_port="$(sed -E 's#^https://[^:/]+:([0-9]+).*#\1#' <<<"$server")"
small='{"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}'
# The test's own Runtime: the chart's python entry with the locally built image, under a name
# of its own (the cluster may have a `python` Runtime owned by someone else).
sdk chart | jq --arg host "$api_host" --arg port "$api_port" --arg sb "$sb" --arg rel "$rel" --arg tag "$tag" \
  --argjson mport "$mport" --argjson sport "$sport" --arg redis "redis://127.0.0.1:${RCE_REDIS_PORT:-16379}" \
  --arg rt "$runtime" --arg img "${py_ref:-rce.dev/sandbox-python:missing}" --argjson small "$small" '{
  hostNetwork: true, kubernetesApi: {host: $host, port: $port},
  namespace: {create: true, labels: {"rce.dev/test": "true"}},
  sandbox: {namespace: $sb, namespaceLabels: {"rce.dev/test": "true"}},
  redis: {enabled: false, url: $redis},
  operator: {image: {tag: $tag, pullPolicy: "IfNotPresent"}, maxRunning: 2, ttlSeconds: 600, watchNamespaces: [$sb],
             instance: $rel, metricsPort: $mport, logLevel: "info,rce_operator=debug", resources: $small},
  shim: {image: {tag: $tag, pullPolicy: "IfNotPresent"}, port: $sport, resources: $small},
  runtimes: [.values.runtimes[] | select(.name == "python") | del(.aliases, .judge0Ids)
             | . + {name: $rt, image: $img, version: "3", annotations: {"rce.dev/test": "helm"}}]}' > "$tmp/values.json"
log "release $rel in $ns, sandboxes in $sb, metrics :$mport, shim :$sport"

crds_by_helm=1
install() {
  if ! sdk install "$rel" --namespace "$ns" --values "$tmp/values.json" > "$tmp/release.json" 2> "$tmp/err"; then
    # Helm 4 applies crds/ server-side. When the cluster's rce CRDs differ from the chart's
    # copy (another build's types) and are managed elsewhere (make up applies crds/ with
    # kubectl), that conflicts: do not take them over mid-run; install without crds/.
    grep -q "failed to install CRD" "$tmp/err" && grep -q conflict "$tmp/err" || { cat "$tmp/err"; exit 1; }
    echo "the cluster's CRDs are managed elsewhere and differ: installing without crds/ ($(head -c 300 "$tmp/err"))" \
      | tee "$tmp/crd-note"
    sdk install "$rel" --namespace "$ns" --values "$tmp/values.json" --without-crds > "$tmp/release.json"
  fi
  want "release status" deployed "$(jq -r .status "$tmp/release.json")"
}
check "helm install into a fresh namespace (hostNetwork, host Redis, local images)" install
if ((!ok)); then
  for what in "get pods -o wide" "get events --sort-by=.lastTimestamp" "logs -l app.kubernetes.io/instance=$rel --tail=40"; do
    # shellcheck disable=SC2086
    kubectl -n "$ns" $what 2>&1 | tail -n 40 >&2 || true
  done
  finish
fi
if [[ -f "$tmp/crd-note" ]]; then skipped=$((skipped + 1)); echo "skip - helm applied charts/rce/crds/: $(cat "$tmp/crd-note")"
else check "helm applied charts/rce/crds/ (server-side) at install" true; fi

running() {
  for dep in operator shim; do
    want "$dep available replicas" 1 "$(kubectl -n "$ns" get deploy "$full-$dep" -o jsonpath='{.status.availableReplicas}')"
  done
  kubectl -n "$ns" get pods -l "app.kubernetes.io/instance=$rel" -o json > "$tmp/pods.json"
  want "pods of the release" 2 "$(jq '.items | length' "$tmp/pods.json")"
  want "hostNetwork, ready, no restarts, read-only root, every pod" "true,true,0,true true,true,0,true" "$(jq -r '[.items[] |
    [.spec.hostNetwork, .status.containerStatuses[0].ready, .status.containerStatuses[0].restartCount,
     .spec.containers[0].securityContext.readOnlyRootFilesystem] | map(tostring) | join(",")] | join(" ")' "$tmp/pods.json")"
}
check "operator and shim Pods run, ready, on the host network" running

endpoints() {
  want "operator /healthz" 200 "$(http "http://127.0.0.1:$mport/healthz")"
  want "operator /metrics" 200 "$(http "http://127.0.0.1:$mport/metrics")"
  want "shim /health" 200 "$(http "http://127.0.0.1:$sport/health")"
  want "shim /ready" 200 "$(http "http://127.0.0.1:$sport/ready")"
}
check "operator /healthz and /metrics, shim /health and /ready answer on 127.0.0.1" endpoints

objects() {
  local psa='{.metadata.labels.pod-security\.kubernetes\.io/enforce} {.metadata.labels.pod-security\.kubernetes\.io/warn}'
  want "release namespace PSA (hostNetwork)" "privileged restricted" "$(kubectl get ns "$ns" -o jsonpath="$psa")"
  want "sandbox namespace PSA" "restricted restricted" "$(kubectl get ns "$sb" -o jsonpath="$psa")"
  want "deny-all selector" '{"rce.dev/sandbox":"true"}' \
    "$(kubectl -n "$sb" get networkpolicy "$full-sandbox-deny-all" -o json | jq -c .spec.podSelector.matchLabels)"
  want "Runtime run" '["python3","{file}"]' "$(kubectl get runtime "$runtime" -o json | jq -c .spec.run)"
  kubectl get crd executions.rce.dev runtimes.rce.dev -o name
}
check "namespaces, PSA labels, NetworkPolicy, Runtime, CRDs exist" objects

can_i() {  # can_i SA VERB RESOURCE[/SUB] NAMESPACE|- yes|no
  local res="${3%%/*}" sub=""; [[ "$3" == */* ]] && sub="--subresource=${3#*/}"
  local where=(--all-namespaces); [[ "$4" != - ]] && where=(-n "$4")
  want "$1 can-i $2 $3 in $4" "$5" \
    "$(kubectl auth can-i "$2" "$res" ${sub:+"$sub"} "${where[@]}" --as="system:serviceaccount:$ns:$full-$1" 2>/dev/null || true)"
}
rbac() {
  local bad=0
  while read -r sa verb res where answer; do can_i "$sa" "$verb" "$res" "$where" "$answer" || bad=1; done <<EOF
operator create pods $sb yes
operator get pods/log $sb yes
operator patch executions.rce.dev/status $sb yes
operator create networkpolicies.networking.k8s.io $sb yes
operator delete networkpolicies.networking.k8s.io $sb no
operator create pods default no
operator list runtimes.rce.dev - yes
operator create runtimes.rce.dev - no
operator get secrets $sb no
operator create pods/exec $sb no
operator update pods $sb no
operator get pods/log default no
operator update executions.rce.dev/finalizers $sb yes
operator create leases.coordination.k8s.io $ns yes
operator update leases.coordination.k8s.io $ns yes
operator delete leases.coordination.k8s.io $ns yes
operator watch leases.coordination.k8s.io $ns yes
operator create leases.coordination.k8s.io $sb no
operator watch leases.coordination.k8s.io kube-node-lease yes
operator update leases.coordination.k8s.io kube-node-lease no
operator list pods - no
operator delete pods default no
operator list nodes - yes
operator watch nodes - yes
operator patch nodes - no
operator delete nodes - no
operator get nodes/proxy - no
shim create leases.coordination.k8s.io $ns no
shim list nodes - no
shim create executions.rce.dev $sb yes
shim watch executions.rce.dev - yes
shim delete executions.rce.dev $sb no
shim create pods $sb no
shim list runtimes.rce.dev - yes
EOF
  return $bad
}
check "service accounts: granted what they need, refused the rest" rbac

no_forbidden() {
  sleep 3
  for comp in operator api-shim; do
    kubectl -n "$ns" logs -l "app.kubernetes.io/component=$comp" --tail=-1 > "$tmp/$comp.log"
    if grep -i -m 3 forbidden "$tmp/$comp.log"; then echo "$comp was refused by the API server (above)"; exit 1; fi
  done
}
check "operator and shim logs show no RBAC refusal" no_forbidden

run_one() {
  kubectl apply -n "$sb" -f - >/dev/null <<EOF
{"apiVersion": "rce.dev/v1alpha1", "kind": "Execution",
 "metadata": {"name": "print-42", "labels": {"rce.dev/operator": "$rel"}},
 "spec": {"language": "$runtime", "source": "print(6*7)"}}
EOF
  for _ in $(seq 240); do
    kubectl -n "$sb" get execution print-42 -o json | jq -c '.status // {}' > "$tmp/st.json"
    jq -e '.phase == "Completed" or .phase == "Failed"' "$tmp/st.json" >/dev/null && break; sleep 0.5
  done
  want "phase, stdout, exit code, verdict (status: $(head -c 600 "$tmp/st.json"))" '["Completed","42\n",0,"Accepted"]' \
    "$(jq -c '[.phase, .stdout, .exitCode, .verdict]' "$tmp/st.json")"
}
via_shim() {
  local id
  id="$(curl -sf --max-time 10 -X POST "http://127.0.0.1:$sport/api/execute" -H 'content-type: application/json' \
    -d "{\"language\": \"$runtime\", \"code\": \"print(6*7)\"}" | jq -er .jobId)"
  for _ in $(seq 240); do
    curl -s --max-time 3 "http://127.0.0.1:$sport/api/status/$id" > "$tmp/job.json" || true
    jq -e '.status | ascii_downcase | . == "completed" or . == "failed"' "$tmp/job.json" >/dev/null 2>&1 && break; sleep 0.5
  done
  want "shim status ($(head -c 400 "$tmp/job.json"))" completed "$(jq -r '.status | ascii_downcase' "$tmp/job.json")"
  jq -e '.output | tostring | contains("42")' "$tmp/job.json" >/dev/null || { echo "output: $(jq .output "$tmp/job.json")"; exit 1; }
}
counted() {  # the release's operator itself finished them (not some other operator)
  local n
  n="$(curl -sf --max-time 3 "http://127.0.0.1:$mport/metrics" \
    | sed -n 's/^rce_executions_finished_total{phase="Completed",verdict="Accepted"} \([0-9]*\)$/\1/p')"
  [[ "${n:-0}" -ge 1 ]] || { echo "the release's operator counts ${n:-no} finished Executions"; exit 1; }
}
if ((have_image)); then
  check "kubectl apply an Execution: the in-cluster operator runs print(6*7) -> 42" run_one
  check "POST /api/execute through the in-cluster shim -> 42" via_shim
  check "the in-cluster operator's metrics count the finished Executions" counted
fi

# The release's operator Pods, without those terminating.
live_operators() {
  kubectl -n "$ns" get pods -l "app.kubernetes.io/instance=$rel,app.kubernetes.io/component=operator" -o json \
    | jq '.items |= map(select(.metadata.deletionTimestamp == null))'
}
upgrade() {
  kubectl -n "$ns" get pods -l app.kubernetes.io/component=operator -o jsonpath='{.items[*].metadata.uid}' > "$tmp/old-uid"
  kubectl -n "$ns" logs -l app.kubernetes.io/component=operator --tail=1 > "$tmp/op.log"
  ! jq -e . "$tmp/op.log" >/dev/null 2>&1 || { echo "the operator logged JSON before the upgrade"; exit 1; }
  jq '.operator.logFormat = "json" | .operator.maxRunning = 3' "$tmp/values.json" > "$tmp/values2.json"
  sdk upgrade "$rel" --namespace "$ns" --values "$tmp/values2.json" > "$tmp/release.json"
  want "release status, revision" "deployed 2" "$(jq -r '"\(.status) \(.revision)"' "$tmp/release.json")"
  kubectl -n "$ns" rollout status "deploy/$full-operator" --timeout=120s
  want "operator RCE_LOG_FORMAT, RCE_MAX_RUNNING" "json 3" "$(kubectl -n "$ns" get deploy "$full-operator" -o json | jq -r \
    '.spec.template.spec.containers[0].env | map({(.name): .value}) | add | "\(.RCE_LOG_FORMAT) \(.RCE_MAX_RUNNING)"')"
  live_operators > "$tmp/pods.json"
  want "operator pods after the upgrade" 1 "$(jq '.items | length' "$tmp/pods.json")"
  [[ "$(jq -r '.items[0].metadata.uid' "$tmp/pods.json")" != "$(cat "$tmp/old-uid")" ]] || { echo "operator Pod not replaced"; exit 1; }
  want "new operator ready, restarts" "true 0" \
    "$(jq -r '.items[0].status.containerStatuses[0] | "\(.ready) \(.restartCount)"' "$tmp/pods.json")"
  kubectl -n "$ns" logs "$(jq -r '.items[0].metadata.name' "$tmp/pods.json")" > "$tmp/op.log"
  [[ -s "$tmp/op.log" ]] || { echo "the new operator logged nothing"; exit 1; }
  jq -e -s 'all(.[]; type == "object")' "$tmp/op.log" >/dev/null || { echo "not JSON logs:"; head -n 3 "$tmp/op.log"; exit 1; }
  want "shim /ready after the upgrade" 200 "$(http "http://127.0.0.1:$sport/ready")"
}
check "helm upgrade (operator logFormat json, maxRunning 3): revision 2, new operator Pod logs JSON" upgrade
if ((ok && have_image)); then
  check "after the upgrade: POST /api/execute -> 42" via_shim
  check "after the upgrade: the new operator's metrics count it" counted
fi

drain() {
  # Executions carry the operator's finalizer: delete them while the operator runs, as
  # NOTES.txt tells users to, or the sandbox namespace could not finish deleting.
  kubectl delete executions.rce.dev --all -n "$sb" --wait=true --timeout=60s >/dev/null
  want "Executions left in the sandbox namespace" "" "$(kubectl get executions.rce.dev -n "$sb" -o name)"
}
check "delete the Executions before uninstalling (the operator removes its finalizer)" drain

jq -r .manifest "$tmp/release.json" > "$tmp/manifest.yaml" 2>/dev/null || true
uninstall() {
  want "release status" uninstalled "$(sdk uninstall "$rel" --namespace "$ns" --timeout 180 | jq -r .release.status)"
}
check "helm uninstall" uninstall

gone() {
  sdk list | jq -e --arg rel "$rel" 'all(.[]; .name != $rel)' >/dev/null || { echo "release $rel still listed"; exit 1; }
  grep -q '^kind:' "$tmp/manifest.yaml" || { echo "no release manifest to check against"; exit 1; }
  local left
  for _ in $(seq 120); do
    # The release namespace is kept on purpose (it holds the release record): checked below.
    left="$(kubectl get -f "$tmp/manifest.yaml" --ignore-not-found -o name | grep -vxF "namespace/$ns" || true)"
    [[ -z "$left" ]] && break; sleep 1
  done
  want "still present after uninstall" "" "$left"
  kubectl get ns "$ns" -o name
  kubectl get crd executions.rce.dev runtimes.rce.dev -o name
}
check "uninstall removed every object of the release (CRDs and the release namespace kept)" gone
# Several operator replicas, in a second release. On this single node's host network the
# replicas cannot share the metrics port, so it binds an ephemeral one (metricsPort 0, no
# probes). It is installed so: on Kubernetes 1.20 an upgrade that drops the probes fails
# (server-side apply leaves the removed probes half there).
op_bin="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/rce-operator"
has_leases=0; "$op_bin" --help 2>/dev/null | grep -q RCE_IDENTITY && has_leases=1
scale_to() {  # scale_to REPLICAS REVISION
  jq --argjson n "$1" '.operator.replicas = $n' "$tmp/values.json" > "$tmp/values-r$1.json"
  local t0=$SECONDS
  sdk upgrade "$rel" --namespace "$ns" --values "$tmp/values-r$1.json" > "$tmp/release.json"
  want "release status, revision" "deployed $2" "$(jq -r '"\(.status) \(.revision)"' "$tmp/release.json")"
  kubectl -n "$ns" rollout status "deploy/$full-operator" --timeout=180s
  echo "helm upgrade to $1 replicas and rollout: $((SECONDS - t0))s"
  want "operator Deployment replicas, ready, available" "$1 $1 $1" "$(kubectl -n "$ns" get deploy "$full-operator" \
    -o jsonpath='{.spec.replicas} {.status.readyReplicas} {.status.availableReplicas}')"
  live_operators > "$tmp/pods.json"
  want "operator Pods (not terminating), ready, restarts" "$1 $1 0" "$(jq -r '[(.items | length),
    ([.items[] | select(.status.containerStatuses[0].ready)] | length),
    ([.items[].status.containerStatuses[0].restartCount] | add)] | map(tostring) | join(" ")' "$tmp/pods.json")"
  want "RCE_IDENTITY, RCE_LEASE_NAMESPACE from the downward API; RCE_SHARD_GROUP" \
    "metadata.name metadata.namespace $full" "$(kubectl -n "$ns" get deploy "$full-operator" -o json | jq -r \
      '.spec.template.spec.containers[0].env | map({(.name): (.valueFrom.fieldRef.fieldPath // .value)}) | add
       | "\(.RCE_IDENTITY) \(.RCE_LEASE_NAMESPACE) \(.RCE_SHARD_GROUP)"')"
  local pdbs
  pdbs="$(jq -r .manifest "$tmp/release.json" | yq_kinds PodDisruptionBudget | tr '\n' ' ' | sed 's/ $//')"
  if (($1 > 1)); then
    local want_api=policy/v1beta1
    kubectl api-versions | grep -qx policy/v1 && want_api=policy/v1
    want "the release's PodDisruptionBudgets (the operator's: the shim has one replica)" "$want_api" "$pdbs"
    for _ in $(seq 60); do  # the disruption controller counts the budget's Pods
      [[ "$(kubectl -n "$ns" get pdb "$full-operator" -o jsonpath='{.status.expectedPods} {.status.disruptionsAllowed}')" == "$1 1" ]] && break
      sleep 1
    done
    want "budget: expected Pods, disruptions allowed" "$1 1" \
      "$(kubectl -n "$ns" get pdb "$full-operator" -o jsonpath='{.status.expectedPods} {.status.disruptionsAllowed}')"
  else
    want "PodDisruptionBudgets at one replica" "" "$pdbs"
    want "PodDisruptionBudgets left in the namespace" "" "$(kubectl -n "$ns" get pdb -o name)"
  fi
}
leases() {  # one live Lease per replica, named <shard group>.<identity>, held by it
  local want_holders got
  want_holders="$(jq -r '[.items[].metadata.name] | sort | join(" ")' "$tmp/pods.json")"
  for _ in $(seq 40); do
    kubectl -n "$ns" get leases -o json > "$tmp/leases.json"
    got="$(jq -r --arg g "$full." '[.items[] | select(.metadata.name | startswith($g))
      | select(.metadata.name == ($g + .spec.holderIdentity)) | .spec.holderIdentity] | sort | join(" ")' "$tmp/leases.json")"
    [[ "$got" == "$want_holders" ]] && break; sleep 1
  done
  want "Leases of the shard group $full, by holder" "$want_holders" "$got"
  want "Leases in $ns" "$(jq '.items | length' "$tmp/pods.json")" "$(jq '.items | length' "$tmp/leases.json")"
  kubectl -n "$ns" get leases
}
check_leases() {
  if ((has_leases)); then check "$1 replica(s): one membership Lease per replica in the release namespace" leases
  else skipped=$((skipped + 1)); echo "skip - membership Leases: $op_bin reads no RCE_IDENTITY (an operator without sharding)"; fi
}
rel="$rel-x"; ns="$ns-x"; sb="$ns-sb"; full="$rel-rce"; runtime="$rel-python"; sport="$(port)"
cleanups+=("$rel $ns $sb")
jq --arg rel "$rel" --arg sb "$sb" --arg rt "$runtime" --argjson sport "$sport" '.operator.metricsPort = 0
  | .operator.instance = $rel | .operator.watchNamespaces = [$sb] | .sandbox.namespace = $sb | .shim.port = $sport
  | .runtimes[0].name = $rt' "$tmp/values2.json" > "$tmp/values.json"
log "release $rel in $ns, sandboxes in $sb, shim :$sport, operator metrics on ephemeral ports"
t_scale=$SECONDS
check "helm install a second release at 1 operator replica (metricsPort 0)" install
if ((ok)); then
  check "helm upgrade operator.replicas 1 -> 3: the Deployment reaches 3 ready replicas, a PodDisruptionBudget" scale_to 3 2
  log "operator Pods by node (topology spread, ScheduleAnyway): $(jq -r '[.items[].spec.nodeName] | group_by(.)
    | map("\(.[0]):\(length)") | join(" ")' "$tmp/pods.json" 2>/dev/null)"
  ((ok)) && check_leases 3
  ((ok && have_image)) && check "3 replicas: POST /api/execute -> 42" via_shim
  check "helm upgrade operator.replicas 3 -> 1: one ready replica, no PodDisruptionBudget" scale_to 1 3
  ((ok)) && check_leases 1
  ((ok && have_image)) && check "back at 1 replica: POST /api/execute -> 42" via_shim
fi
check "second release: delete the Executions before uninstalling" drain
jq -r .manifest "$tmp/release.json" > "$tmp/manifest.yaml" 2>/dev/null || true
check "second release: helm uninstall" uninstall
check "second release: uninstall removed every object of the release" gone
log "the scale-out part took $((SECONDS - t_scale))s"
finish
