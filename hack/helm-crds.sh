#!/usr/bin/env bash
# hack/helm-crds.sh check|sync — the chart ships the CRDs in charts/rce/crds/ (Helm installs
# them before the templates and never deletes them); they must equal crds/, which is
# generated from the Rust types (make crds).
#   check  exit 1, with a diff, when charts/rce/crds/ differs from crds/
#   sync   copy crds/*.yaml into charts/rce/crds/ (and drop files crds/ no longer has)
set -euo pipefail
source "$(dirname "$0")/common.sh"
src="$RCE_ROOT/crds"; dst="$RCE_ROOT/charts/rce/crds"
case "${1:-check}" in
  check)
    compgen -G "$src/*.yaml" >/dev/null || die "no CRDs in crds/ (make crds)"
    diff -ru "$src" "$dst" || die "charts/rce/crds/ differs from crds/ (run: hack/helm-crds.sh sync)"
    log "charts/rce/crds/ equals crds/";;
  sync)
    compgen -G "$src/*.yaml" >/dev/null || die "no CRDs in crds/ (make crds)"
    mkdir -p "$dst"
    for f in "$dst"/*.yaml; do [[ -e "$f" && ! -e "$src/$(basename "$f")" ]] && rm -v "$f"; done
    cp -v "$src"/*.yaml "$dst"/;;
  *) echo "usage: $0 check|sync" >&2; exit 2;;
esac
