#!/usr/bin/env bash
# hack/playground.sh OUT.js — build the playground's script: CodeMirror 6 and the page's code
# (api-shim/playground/src), bundled by esbuild, both from the npm registry at the versions of
# api-shim/playground/package-lock.json (`npm ci`). Run by api-shim/build.rs, which embeds OUT.js
# in the shim (served as /playground.js); nothing is fetched when the page runs.
#
# Outside the checkout, reused while their inputs stay the same:
#   $RCE_CACHE/playground/deps-<sha256 of the lockfile>/node_modules    (npm ci)
#   $RCE_CACHE/playground/<sha256 of every input>/playground.js          (the bundle)
#   $RCE_CACHE/npm                                                       (npm's download cache)
# Inputs: package.json, package-lock.json, samples.mjs, src/*, this script, and the sample
# programs (sandbox-images/langs/*/tests/echo.* and hello.*).
set -euo pipefail
source "$(dirname "$0")/common.sh"
out="${1:?usage: hack/playground.sh OUT.js}"
SRC="$RCE_ROOT/api-shim/playground"
LANGS="$RCE_ROOT/sandbox-images/langs"
CACHE="$RCE_CACHE/playground"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  [[ $(id -u) -eq 0 ]] || die "the playground needs Node.js and npm (Debian: apt-get install nodejs npm)"
  need_pkgs nodejs npm
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
((node_major >= 18)) || die "the playground's build needs Node.js 18 or later (found $(node --version))"
mkdir -p "$CACHE" 2>/dev/null && [[ -w "$CACHE" ]] ||
  die "cannot write the playground cache $CACHE (set RCE_CACHE to a writable directory)"

inputs() {
  (cd "$SRC" && find package.json package-lock.json samples.mjs src -type f ! -name '*.gen.json' | LC_ALL=C sort)
}
samples() {
  (cd "$LANGS" && find . -path './*/tests/*' -type f \( -name 'echo.*' -o -name 'hello.*' \) | LC_ALL=C sort)
}
lock_hash="$(sha256sum < "$SRC/package-lock.json" | cut -c1-16)"
hash="$({
  cd "$SRC" && inputs | xargs sha256sum
  cd "$LANGS" && samples | xargs sha256sum
  sha256sum < "$RCE_ROOT/hack/playground.sh"
} | sha256sum | cut -c1-16)"
bundle="$CACHE/$hash/playground.js"

# One build at a time (cargo may build the shim for two targets at once).
exec 9>"$CACHE/.lock"
flock 9
if [[ ! -s "$bundle" ]]; then
  deps="$CACHE/deps-$lock_hash"
  if [[ ! -f "$deps/.done" ]]; then
    log "playground: npm ci (lockfile $lock_hash) in $deps"
    rm -rf "$deps"; mkdir -p "$deps"
    cp "$SRC/package.json" "$SRC/package-lock.json" "$deps/"
    (cd "$deps" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error --cache "$RCE_CACHE/npm" >&2) ||
      die "playground: npm ci failed in $deps (is the npm registry reachable? see the messages above)"
    touch "$deps/.done"
  fi
  # Built inside the deps directory, so that esbuild finds its node_modules.
  work="$(mktemp -d "$deps/build.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  cp -r "$SRC/src" "$work/src"
  node "$SRC/samples.mjs" "$LANGS" "$work/src/samples.gen.json" || die "playground: gathering the sample programs failed"
  log "playground: bundling with esbuild ($hash)"
  "$deps/node_modules/.bin/esbuild" "$work/src/main.js" --bundle --minify --format=iife --target=es2020 \
    --legal-comments=none --log-level=warning --outfile="$work/playground.js" >&2 ||
    die "playground: esbuild failed (see the messages above)"
  mkdir -p "$CACHE/$hash"
  mv "$work/playground.js" "$bundle.tmp" && mv "$bundle.tmp" "$bundle"
  # Bundles of older inputs: keep the newest few.
  (cd "$CACHE" && ls -1dt -- */playground.js 2>/dev/null | tail -n +6 | xargs -r dirname | xargs -r rm -rf --)
fi
# Only when it differs: a new file would make cargo recompile the shim.
cmp -s "$bundle" "$out" || cp "$bundle" "$out"
