#!/usr/bin/env bash
# make down: stop the engine, then the cluster; caches stay.
set -euo pipefail
source "$(dirname "$0")/common.sh"
"$RCE_ROOT/hack/engine.sh" down
"$RCE_ROOT/hack/cluster.sh" down
