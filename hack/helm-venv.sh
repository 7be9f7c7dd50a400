#!/usr/bin/env bash
# hack/helm-venv.sh — the virtualenv with the Helm SDK (PyPI helm-python-sdk: Helm v4's Go
# SDK as a shared library), outside the checkout at $RCE_CACHE/venv-helm. Creates or repairs
# it (idempotent) and prints its python's path. Used by hack/test.sh (before cargo test: the
# chart tests in tests/tests/helm_chart.rs render through it) and hack/helm-test.sh.
set -euo pipefail
source "$(dirname "$0")/common.sh"
VENV="$RCE_CACHE/venv-helm"
HELM_SDK_VERSION="0.2.2"
if ! "$VENV/bin/python" -c "import helm_python; assert helm_python.__version__ == '$HELM_SDK_VERSION'" 2>/dev/null; then
  log "preparing $VENV (helm-python-sdk $HELM_SDK_VERSION)"
  command -v python3 >/dev/null || need_pkgs python3
  python3 -c "import venv, ensurepip" 2>/dev/null || need_pkgs python3-venv
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "helm-python-sdk==$HELM_SDK_VERSION"
fi
echo "$VENV/bin/python"
