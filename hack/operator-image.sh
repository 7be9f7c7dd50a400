#!/usr/bin/env bash
# hack/operator-image.sh — build the images of the rce operator and the REST shim, without
# Docker: static binaries in a minimal root filesystem (passwd/group for uid 65532, CA
# certificates, nsswitch.conf), written as docker-archive tars by hack/mkimage.sh.
#
#   hack/operator-image.sh [--tag TAG] [--import] [--kind CLUSTER] [--no-build]
#
#   --tag TAG       image tag (default: the workspace version, which is the chart's appVersion)
#   --import        also `ctr -n k8s.io images import` both tars (the local cluster's containerd)
#   --kind CLUSTER  also `kind load image-archive` both tars into that kind cluster
#   --no-build      package the binaries already built (fails if they are missing)
#
# Outputs (outside the checkout):
#   $RCE_CACHE/images/rce-operator-TAG.tar    ref rce.dev/rce-operator:TAG
#   $RCE_CACHE/images/rce-api-shim-TAG.tar    ref rce.dev/rce-api-shim:TAG
#   $RCE_CACHE/images/engine-index.tsv        name<TAB>ref<TAB>tar, one line per image
set -euo pipefail
source "$(dirname "$0")/common.sh"
TARGET=x86_64-unknown-linux-gnu
REGISTRY=rce.dev
IMAGES="$RCE_CACHE/images"
tag=""; do_import=0; kind_cluster=""; build=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --tag) tag="$2"; shift 2;;
    --import) do_import=1; shift;;
    --kind) kind_cluster="$2"; shift 2;;
    --no-build) build=0; shift;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    *) die "unknown argument $1 (see --help)";;
  esac
done
if [[ -z "$tag" ]]; then
  tag="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$RCE_ROOT/Cargo.toml" | head -n1)"
  [[ -n "$tag" ]] || die "no version in [workspace.package] of Cargo.toml; pass --tag"
fi
[[ "$tag" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "bad tag: $tag"

BIN="$CARGO_TARGET_DIR/$TARGET/release"
if ((build)); then
  log "building static rce-operator and rce-api-shim (release, $TARGET, crt-static)"
  # --target keeps these flags off build scripts and proc macros, and the artifacts apart from
  # the ordinary (dynamic) release build in $CARGO_TARGET_DIR/release.
  (cd "$RCE_ROOT" && RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --target "$TARGET" -p rce-operator -p rce-api-shim --bins)
fi
for b in rce-operator rce-api-shim; do
  [[ -x "$BIN/$b" ]] || die "$BIN/$b is missing (build it, or drop --no-build)"
  if ldd "$BIN/$b" >/dev/null 2>&1 && ! ldd "$BIN/$b" 2>&1 | grep -q "statically linked"; then
    die "$BIN/$b is not statically linked"
  fi
done

tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
# Layer 1, shared by both images: the minimal root filesystem.
base="$tmp/base"
mkdir -p "$base"/{etc/ssl/certs,tmp,home/nonroot,usr/local/bin}
chmod 1777 "$base/tmp"
cat > "$base/etc/passwd" <<'P'
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
P
cat > "$base/etc/group" <<'G'
root:x:0:
nonroot:x:65532:
G
printf 'hosts: files dns\n' > "$base/etc/nsswitch.conf"
[[ -f /etc/ssl/certs/ca-certificates.crt ]] || need_pkgs ca-certificates
cp /etc/ssl/certs/ca-certificates.crt "$base/etc/ssl/certs/ca-certificates.crt"
chown -R 65532:65532 "$base/home/nonroot"

mkdir -p "$IMAGES"
index="$tmp/index.tsv"
for b in rce-operator rce-api-shim; do
  layer="$tmp/$b"
  mkdir -p "$layer/usr/local/bin"
  install -m 0755 "$BIN/$b" "$layer/usr/local/bin/$b"
  strip --strip-debug "$layer/usr/local/bin/$b" 2>/dev/null || true
  ref="$REGISTRY/$b:$tag"; out="$IMAGES/$b-$tag.tar"
  "$RCE_ROOT/hack/mkimage.sh" "$out" "$ref" \
    --entrypoint "[\"/usr/local/bin/$b\"]" --user 65532:65532 --workdir /home/nonroot \
    --env '["PATH=/usr/local/bin:/usr/bin:/bin","SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"]' \
    "$base" "$layer"
  printf '%s\t%s\t%s\n' "$b" "$ref" "$out" >> "$index"
  log "wrote $out ($ref, $(du -h "$out" | cut -f1))"
done
mv "$index" "$IMAGES/engine-index.tsv"

if ((do_import)); then
  # Into every node's containerd (RCE_NODES): a Pod of the chart may be scheduled on any.
  while read -r node sock; do
    while IFS=$'\t' read -r _ ref out; do
      ctr -a "$sock" -n k8s.io images import "$out" >/dev/null || die "ctr import of $out into $node failed"
      log "imported $ref into $node's containerd (k8s.io)"
    done < "$IMAGES/engine-index.tsv"
  done < <(node_sockets)
fi
if [[ -n "$kind_cluster" ]]; then
  while IFS=$'\t' read -r _ ref out; do
    kind load image-archive "$out" --name "$kind_cluster" || die "kind load of $out failed"
  done < "$IMAGES/engine-index.tsv"
fi
cat "$IMAGES/engine-index.tsv"
