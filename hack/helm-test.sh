#!/usr/bin/env bash
# hack/helm-test.sh — the Helm chart's tests (lint, render, install/uninstall on a real cluster)
# on the real Helm v4 engine from the PyPI package helm-python-sdk, kept in a virtualenv
# outside the checkout ($RCE_CACHE/venv-helm, created or repaired here, idempotent).
#
#   hack/helm-test.sh [--static-only] [--no-build] [--execution auto|always|never]
#
# Uses KUBECONFIG, or the local cluster's (/var/lib/rce-local/kubeconfig). Prints one line
# `N passed, M failed, K skipped` at the end and exits non-zero when anything failed.
set -euo pipefail
source "$(dirname "$0")/common.sh"
VENV="$RCE_CACHE/venv-helm"
HELM_SDK_VERSION="0.2.2"
if ! "$VENV/bin/python" -c "import helm_python, yaml; assert helm_python.__version__ == '$HELM_SDK_VERSION'" 2>/dev/null; then
  log "preparing $VENV (helm-python-sdk $HELM_SDK_VERSION, PyYAML)"
  command -v python3 >/dev/null || need_pkgs python3
  python3 -c "import venv, ensurepip" 2>/dev/null || need_pkgs python3-venv
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "helm-python-sdk==$HELM_SDK_VERSION" "PyYAML>=6"
fi
export KUBECONFIG="${KUBECONFIG:-$RCE_STATE/kubeconfig}"
exec "$VENV/bin/python" "$RCE_ROOT/hack/helm-test.py" "$@"
