#!/usr/bin/env bash
# make up: the local cluster, then the rce engine on it.
set -euo pipefail
source "$(dirname "$0")/common.sh"
t0=$SECONDS
"$RCE_ROOT/hack/cluster.sh" up
"$RCE_ROOT/hack/engine.sh" up
log "everything up in $((SECONDS - t0))s"
