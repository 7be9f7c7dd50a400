#!/usr/bin/env bash
# Judging (issue 13): a C++ submission against N test cases (default 50) as ONE Execution with
# spec.tests (one compile, one sandbox), beside the same N cases as N separate Executions
# (N compiles, N sandboxes), both cold, on the engine's operator (make up). Prints the wall
# time of each from the first create to the last result, and the ratio.
#   BENCH_JUDGING_N=50  cases.
set -euo pipefail
source "$(dirname "$0")/common.sh"
eval "$("$RCE_ROOT/hack/cluster.sh" env)"
n="${BENCH_JUDGING_N:-50}"
ns="rce-bench-judging"
kubectl delete namespace "$ns" --ignore-not-found --wait=true >/dev/null
kubectl create namespace "$ns" >/dev/null
trap 'kubectl delete namespace "$ns" --ignore-not-found --wait=false >/dev/null 2>&1 || true' EXIT

src='#include <iostream>
#include <vector>
#include <algorithm>
int main() { long long n; std::cin >> n; std::vector<long long> v(n); for (long long i = 0; i < n; i++) v[i] = (i * 7919) % (n + 1); std::sort(v.begin(), v.end()); std::cout << n * n << "\n"; }'

# wait_done NAMES...: until every named Execution is Completed or Failed; prints the verdicts.
wait_done() {
  local deadline=$((SECONDS + 900)) left
  while :; do
    left=$(kubectl -n "$ns" get executions -o json \
      | jq -r --argjson want "$(printf '%s\n' "$@" | jq -R . | jq -s .)" \
        '[.items[] | select(.metadata.name as $m | $want | index($m)) | select((.status.phase // "") | test("Completed|Failed") | not)] | length')
    [[ "$left" == 0 ]] && break
    (( SECONDS < deadline )) || die "judging bench: Executions not done after 900 s"
    sleep 0.5
  done
}

now_ms() { date +%s%3N; }

# One Execution, N cases.
python3 - "$n" "$src" >"$RCE_STATE/bench-judging-one.json" <<'EOF'
import json, sys
n, src = int(sys.argv[1]), sys.argv[2]
tests = [{"name": f"case-{i}", "stdin": f"{1000 + i}\n", "expectedOutput": f"{(1000 + i) ** 2}\n"} for i in range(n)]
print(json.dumps({"apiVersion": "rce.dev/v1alpha1", "kind": "Execution", "metadata": {"name": "one-with-tests"},
                  "spec": {"language": "cpp", "source": src, "limits": {"wallTimeMs": 2000}, "tests": tests}}))
EOF
t0=$(now_ms)
kubectl -n "$ns" create -f "$RCE_STATE/bench-judging-one.json" >/dev/null
wait_done one-with-tests
t1=$(now_ms)
one=$(kubectl -n "$ns" get execution one-with-tests -o json)
verdict=$(jq -r '.status.verdict' <<<"$one")
passed=$(jq -r '"\(.status.passed)/\(.status.total)"' <<<"$one")
compile_ms=$(jq -r '.status.compile.wallTimeMs // 0' <<<"$one")
[[ "$verdict" == Accepted ]] || die "judging bench: the one Execution is $verdict: $(jq -c .status <<<"$one" | head -c 600)"

# N Executions, one case each, created at once.
python3 - "$n" "$src" >"$RCE_STATE/bench-judging-many.json" <<'EOF'
import json, sys
n, src = int(sys.argv[1]), sys.argv[2]
items = [{"apiVersion": "rce.dev/v1alpha1", "kind": "Execution", "metadata": {"name": f"separate-{i}"},
          "spec": {"language": "cpp", "source": src, "limits": {"wallTimeMs": 2000}, "stdin": f"{1000 + i}\n", "expectedOutput": f"{(1000 + i) ** 2}\n"}}
         for i in range(n)]
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
EOF
t2=$(now_ms)
kubectl -n "$ns" create -f "$RCE_STATE/bench-judging-many.json" >/dev/null
mapfile -t names < <(seq 0 $((n - 1)) | sed 's/^/separate-/')
wait_done "${names[@]}"
t3=$(now_ms)
accepted=$(kubectl -n "$ns" get executions -o json | jq '[.items[] | select(.metadata.name | startswith("separate-")) | select(.status.verdict == "Accepted")] | length')
[[ "$accepted" == "$n" ]] || die "judging bench: $accepted of $n separate Executions Accepted"

one_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
many_s=$(awk -v a="$t2" -v b="$t3" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
ratio=$(awk -v a="$t1" -v b="$t0" -v c="$t3" -v d="$t2" 'BEGIN { printf "%.1f", (c - d) / (a - b) }')
printf '%-44s %10s %10s\n' "judging, C++, $n test cases, cold" "wall" "compiles"
printf '%-44s %9ss %10s   (%s passed, compile %s ms)\n' "one Execution with spec.tests" "$one_s" 1 "$passed" "$compile_ms"
printf '%-44s %9ss %10s   (%s Accepted)\n' "$n separate Executions, created at once" "$many_s" "$n" "$accepted"
printf '%-44s %9sx\n' "speed-up" "$ratio"
