#!/usr/bin/env bash
# sandbox-images/build.sh — build the sandbox images from Debian packages, without Docker.
#
#   build.sh [--import] [LANG...]   build the images of LANG... (default: every langs/*)
#   build.sh --list                 print the index: lang<TAB>image-ref<TAB>tar-path
#   build.sh --gc                   remove cached layers and images no current recipe uses
#                                   (done after every full build, too)
#
# Run as root on Debian bookworm. Idempotent: every artifact lives in $RCE_CACHE keyed by a hash
# of its recipe and is rebuilt only when missing or when its recipe changed.
#
# An image is a stack of layers, each an uncompressed layer tar in the cache:
#   1. base     debootstrap --variant=minbase bookworm, upgraded, trimmed. One tar, shared by
#               every image (same digest), so the set stays small.
#   2. language what the language's Debian packages add on top of the base (or on top of its
#               parent language, langs/<lang>/parent: cpp stacks on c, typescript on javascript),
#               captured as the upperdir of an overlayfs mount while apt-get installs into the
#               merged tree. A language without packages (bash) has no layer of its own.
#   3. runner   /usr/local/bin/rce-runner (static), empty /work, /etc/rce, /tmp.
# The catalog is data: langs/<lang>/{packages,parent,runtime.yaml,tests/}.
#
# Outputs (all under $RCE_CACHE, nothing in the checkout):
#   images/<lang>-<hash12>.tar      docker-archive, ref rce.dev/sandbox-<lang>:<hash12>
#   images/index.tsv                lang, image ref, tar path
#   images/runtimes/<lang>.yaml     the Runtime object with image and version filled in
#   images/runtimes.yaml            all of them, one multi-document file
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../hack/common.sh
source "$HERE/../hack/common.sh"

SUITE=bookworm
MIRROR=http://deb.debian.org/debian
SECURITY_MIRROR=http://deb.debian.org/debian-security
REGISTRY=rce.dev
SB="$RCE_CACHE/sandbox"          # layers, rootfs trees, apt caches
IMAGES="$RCE_CACHE/images"       # image tars, index, runtimes
LANGS_DIR="$HERE/langs"
RUNNER_TARGET=x86_64-unknown-linux-gnu
IMAGE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }

# ---------------------------------------------------------------------------------------------
# helpers

sha() { sha256sum | cut -d' ' -f1; }

# Mounts made by this script, unmounted (in reverse) on exit, whatever happens.
MOUNTS=()
cleanup_mounts() {
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    umount -l "${MOUNTS[i]}" 2>/dev/null || true
  done
  MOUNTS=()
}
trap cleanup_mounts EXIT
mnt() { # mnt TARGET mount-args...
  local target="$1"; shift
  mount "$@" "$target"
  MOUNTS+=("$target")
}

# rm -rf that never follows a mount point out of the tree (a stale bind of /dev or
# /etc/resolv.conf from an interrupted run must not be emptied): unmount first.
safe_rm() {
  local p m
  for p in "$@"; do
    [[ -e "$p" ]] || continue
    p="$(realpath "$p")"
    while read -r m; do umount -l "$m" 2>/dev/null || true
    done < <(awk '{print $5}' /proc/self/mountinfo | grep -E "^$p(/|$)" | sort -r)
    rm -rf --one-file-system "$p"
  done
}

# Reproducible-enough layer tar of a directory (the same tar options as hack/mkimage.sh, minus
# xattrs: overlayfs' trusted.* attributes must not leak into images; no file needs capabilities
# in a sandbox that drops them all). Real mtimes are kept: Python's .pyc files are validated
# against their sources' mtimes, a fixed mtime would make every .pyc stale.
tar_layer() { # tar_layer DIR OUT.tar
  tar --sort=name --numeric-owner --format=posix --no-xattrs --no-acls --no-selinux \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$1" -cf "$2.tmp" . && mv "$2.tmp" "$2"
}

# Set up /proc, /dev, resolv.conf, apt caches for a chroot at $1 (a merged overlay or a rootfs).
chroot_prepare() {
  local root="$1"
  mnt "$root/proc" -t proc proc
  mnt "$root/dev" --rbind /dev
  mount --make-rslave "$root/dev"
  mnt "$root/sys" -t sysfs -o ro sysfs
  mnt "$root/tmp" -t tmpfs -o mode=1777 tmpfs
  mnt "$root/run" -t tmpfs -o mode=0755 tmpfs
  [[ -e "$root/etc/resolv.conf" ]] || die "$root/etc/resolv.conf missing"
  mnt "$root/etc/resolv.conf" --bind /etc/resolv.conf
  mkdir -p "$SB/apt-archives/partial" "$SB/apt-lists/partial"
  mnt "$root/var/cache/apt/archives" --bind "$SB/apt-archives"
  mnt "$root/var/lib/apt/lists" --bind "$SB/apt-lists"
}

in_chroot() { # in_chroot ROOT CMD...
  local root="$1"; shift
  chroot "$root" /usr/bin/env -i PATH="$IMAGE_PATH" HOME=/root LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true "$@"
}

APT_OPTS=(-o APT::Sandbox::User=root -o Dpkg::Use-Pty=0 -o Acquire::Retries=3 -o APT::Install-Recommends=false)

# Files that must never end up in a layer (relative to the layer's root).
scrub_tree() {
  local d="$1"
  rm -rf "$d"/var/lib/apt/lists/* "$d"/var/cache/apt/*.bin "$d"/var/cache/apt/archives/*.deb \
    "$d"/var/cache/apt/archives/partial/* "$d"/var/log/apt "$d"/var/log/dpkg.log \
    "$d"/var/log/alternatives.log "$d"/var/log/bootstrap.log "$d"/var/cache/debconf/*-old \
    "$d"/var/lib/dpkg/*-old "$d"/var/cache/ldconfig/aux-cache "$d"/root/.cache \
    "$d"/usr/share/man "$d"/usr/share/info "$d"/usr/share/lintian "$d"/usr/share/linda
  # Documentation: keep only the copyright files.
  if [[ -d "$d/usr/share/doc" ]]; then
    find "$d/usr/share/doc" -mindepth 1 \( -type f -o -type l \) ! -name copyright -delete
    find "$d/usr/share/doc" -mindepth 1 -type d -empty -delete
  fi
  # Translations: none (the sandbox speaks C.UTF-8).
  if [[ -d "$d/usr/share/locale" ]]; then
    find "$d/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  fi
  if [[ -d "$d/usr/lib/locale" ]]; then
    find "$d/usr/lib/locale" -mindepth 1 -maxdepth 1 ! -name C.utf8 -exec rm -rf {} +
  fi
  true
}

# ---------------------------------------------------------------------------------------------
# 1. base layer

# Applied by dpkg to everything installed after the base (language layers): no docs, no man
# pages, no translations — the same trim as scrub_tree.
DPKG_EXCLUDES='path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/lintian/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias'

build_base() { # build_base DIR — DIR/rootfs is created
  local dir="$1" root="$1/rootfs"
  mkdir -p "$SB/debootstrap-debs"
  log "debootstrap $SUITE (minbase) into $root"
  debootstrap --variant=minbase --cache-dir="$SB/debootstrap-debs" "$SUITE" "$root" "$MIRROR" \
    >"$dir/debootstrap.log" 2>&1 || { tail -20 "$dir/debootstrap.log" >&2; die "debootstrap failed"; }
  cat >"$root/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
EOF
  printf '%s\n' "$DPKG_EXCLUDES" >"$root/etc/dpkg/dpkg.cfg.d/rce-excludes"
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$root/etc/apt/apt.conf.d/90rce"
  # No daemon is ever started by a package's maintainer scripts.
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"; chmod 755 "$root/usr/sbin/policy-rc.d"
  : >"$root/etc/resolv.conf"
  echo sandbox >"$root/etc/hostname"
  rm -f "$root/etc/machine-id" "$root/var/lib/dbus/machine-id"
  chroot_prepare "$root"
  log "base: apt-get upgrade (bookworm-updates, bookworm-security)"
  in_chroot "$root" apt-get "${APT_OPTS[@]}" -qq update
  in_chroot "$root" apt-get "${APT_OPTS[@]}" -qq -y dist-upgrade >"$dir/upgrade.log" 2>&1 \
    || { tail -20 "$dir/upgrade.log" >&2; die "base upgrade failed"; }
  cleanup_mounts
  scrub_tree "$root"
  find "$root/dev" -mindepth 1 -delete   # the container runtime provides /dev
  # update-alternatives fails on a missing man directory (java); dpkg excludes the pages.
  for i in 1 2 3 4 5 6 7 8; do mkdir -p "$root/usr/share/man/man$i"; done
  dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Package}\t${Version}\n' >"$dir/versions"
}

# Sets BASE_DIR, the base's cache dir (rootfs/, layer.tar, versions), from the recipe's hash.
BASE_DIR=""
base_dir() {
  local h
  h="$( { echo "v1 $SUITE $MIRROR $SECURITY_MIRROR"; declare -f build_base scrub_tree; echo "$DPKG_EXCLUDES"; } | sha | cut -c1-16)"
  BASE_DIR="$SB/base-$h"
}
# Builds the base if it is missing.
ensure_base() {
  base_dir
  if [[ -f "$BASE_DIR/layer.tar" ]]; then return 0; fi
  local t0=$SECONDS
  safe_rm "$BASE_DIR.tmp"; mkdir -p "$BASE_DIR.tmp"
  build_base "$BASE_DIR.tmp"
  tar_layer "$BASE_DIR.tmp/rootfs" "$BASE_DIR.tmp/layer.tar"
  safe_rm "$BASE_DIR"; mv "$BASE_DIR.tmp" "$BASE_DIR"
  log "base layer: $(du -h "$BASE_DIR/layer.tar" | cut -f1) in $((SECONDS - t0)) s"
}

# ---------------------------------------------------------------------------------------------
# 2. language layers

read_list() { [[ -f "$1" ]] && sed -e 's/#.*//' "$1" | tr -s ' \t\n' '\n' | sed '/^$/d' || true; }

# Recipe hash of a language's layer chain (empty chain → base hash only).
declare -A LAYER_HASH
layer_hash() { # layer_hash LANG → sets LAYER_HASH[LANG]
  local lang="$1" parent="" ph f
  [[ -n "${LAYER_HASH[$lang]:-}" ]] && return 0
  [[ -d "$LANGS_DIR/$lang" ]] || die "no such language: $lang"
  if [[ -f "$LANGS_DIR/$lang/parent" ]]; then
    parent="$(read_list "$LANGS_DIR/$lang/parent" | head -1)"
    layer_hash "$parent"; ph="${LAYER_HASH[$parent]}"
  else
    ph="$(basename "$BASE_DIR")"
  fi
  LAYER_HASH[$lang]="$( { echo "$ph"; read_list "$LANGS_DIR/$lang/packages" | sort;
    for f in setup.sh prune; do if [[ -f "$LANGS_DIR/$lang/$f" ]]; then echo "$f"; cat "$LANGS_DIR/$lang/$f"; fi; done
    declare -f build_layer prune_layer convert_whiteouts scrub_tree; } | sha | cut -c1-16)"
}

# Converts overlayfs markers in an upperdir copy into OCI/docker whiteouts.
convert_whiteouts() { # convert_whiteouts DIR LOWERDIRS
  local d="$1" lowers="$2" f dir rel l below
  # Deleted entries: character devices 0/0 → .wh.<name>
  while IFS= read -r -d '' f; do
    if [[ "$(stat -c '%t:%T' "$f")" == "0:0" ]]; then
      rm -f "$f"; : >"$(dirname "$f")/.wh.$(basename "$f")"
    fi
  done < <(find "$d" -type c -print0)
  # Opaque directories → <dir>/.wh..wh..opq, but only where the directory exists below (the
  # kernel marks many freshly created directories opaque; there the marker means nothing).
  while IFS= read -r dir; do
    [[ -n "$dir" && -d "$dir" ]] || continue
    rel="${dir#"$d"}"; below=0
    IFS=: read -ra l <<<"$lowers"
    for f in "${l[@]}"; do if [[ -e "$f$rel" || -L "$f$rel" ]]; then below=1; fi; done
    if ((below)); then : >"$dir/.wh..wh..opq"; fi
  done < <(getfattr -R --absolute-names -n trusted.overlay.opaque "$d" 2>/dev/null | sed -n 's/^# file: //p')
}

# langs/<lang>/prune: path globs (relative to /, ** allowed) of files the language does not need
# (sanitizer runtimes, profilers, test data). Only files this layer added are removed.
prune_layer() { # prune_layer LANG UPPERDIR
  local f="$LANGS_DIR/$1/prune" pat m n=0
  [[ -f "$f" ]] || return 0
  while IFS= read -r pat; do
    [[ "$pat" == /* ]] && pat="${pat#/}"
    for m in $(shopt -s globstar nullglob; cd "$2" && eval "printf '%s\n' $pat"); do
      [[ -n "$m" && "$m" != . && "$m" != .. && "$m" != */.. ]] || continue
      [[ -e "$2/$m" || -L "$2/$m" ]] || continue
      rm -rf --one-file-system "${2:?}/$m"; n=$((n + 1))
    done
  done < <(read_list "$f")
  log "$1: pruned $n paths"
}

# Language layers are overlayfs upperdirs: fail early and clearly where overlayfs is missing.
OVERLAY_OK=0
check_overlay() {
  ((OVERLAY_OK)) && return 0
  local d="$SB/.overlay-check"
  safe_rm "$d"; mkdir -p "$d"/{l,u,w,m}
  if ! mount -t overlay overlay -o "lowerdir=$d/l,upperdir=$d/u,workdir=$d/w" "$d/m" 2>/dev/null; then
    safe_rm "$d"
    die "overlayfs does not work here (modprobe overlay?); language layers need it"
  fi
  umount "$d/m"; safe_rm "$d"; OVERLAY_OK=1
}

build_layer() { # build_layer LANG DIR LOWERDIRS(colon-separated, top first)
  local lang="$1" dir="$2" lowers="$3" merged pkgs
  mapfile -t pkgs < <(read_list "$LANGS_DIR/$lang/packages")
  mkdir -p "$dir/upper" "$dir/work" "$dir/merged"
  merged="$dir/merged"
  mnt "$merged" -t overlay overlay \
    -o "lowerdir=$lowers,upperdir=$dir/upper,workdir=$dir/work,redirect_dir=off,index=off,metacopy=off"
  chroot_prepare "$merged"
  log "$lang: apt-get install ${pkgs[*]}"
  in_chroot "$merged" apt-get "${APT_OPTS[@]}" -qq update
  in_chroot "$merged" apt-get "${APT_OPTS[@]}" -y install "${pkgs[@]}" >"$dir/install.log" 2>&1 \
    || { tail -30 "$dir/install.log" >&2; die "$lang: apt-get install failed (log: $dir/install.log)"; }
  if [[ -f "$LANGS_DIR/$lang/setup.sh" ]]; then
    log "$lang: running setup.sh in the chroot"
    cp "$LANGS_DIR/$lang/setup.sh" "$merged/tmp/rce-setup.sh"
    in_chroot "$merged" /bin/sh -e /tmp/rce-setup.sh >>"$dir/install.log" 2>&1 \
      || { tail -30 "$dir/install.log" >&2; die "$lang: setup.sh failed"; }
  fi
  dpkg-query --admindir="$merged/var/lib/dpkg" -W -f='${Package}\t${Version}\n' >"$dir/versions"
  cleanup_mounts
  rmdir "$merged"; rm -rf "$dir/work"
  # Drop what must not be in the layer. Deleting a file from the upperdir means "unchanged from
  # below", so this never creates whiteouts.
  scrub_tree "$dir/upper"
  rm -f "$dir/upper/etc/resolv.conf"
  prune_layer "$lang" "$dir/upper"
  # The mount points of chroot_prepare may have been created as (empty) copies: drop them.
  for p in proc dev sys tmp run var/cache/apt/archives var/lib/apt/lists; do
    if [[ -d "$dir/upper/$p" && -z "$(ls -A "$dir/upper/$p")" ]]; then rmdir "$dir/upper/$p"; fi
  done
  # Make sure every toolchain file is readable by any uid.
  chmod -R a+rX "$dir/upper/usr" "$dir/upper/etc/alternatives" 2>/dev/null || true
  # The layer tar: a hard-linked copy of the upperdir with docker whiteouts. The raw upperdir
  # is kept as the lowerdir of child languages.
  cp -al "$dir/upper" "$dir/layer"
  convert_whiteouts "$dir/layer" "$lowers"
  tar_layer "$dir/layer" "$dir/layer.tar"
  rm -rf "$dir/layer"
}

# ensure_layers LANG: builds the layer chain; sets LAYERS_OF_LANG (tar list, bottom first,
# base included), TOP_VERSIONS (dpkg versions file of the top layer).
ensure_layers() {
  local lang="$1" chain=() l parent dir lowers tars=() t0
  l="$lang"
  while :; do
    chain=("$l" "${chain[@]}")
    [[ -f "$LANGS_DIR/$l/parent" ]] || break
    l="$(read_list "$LANGS_DIR/$l/parent" | head -1)"
  done
  tars=("$BASE_DIR/layer.tar"); lowers="$BASE_DIR/rootfs"; TOP_VERSIONS="$BASE_DIR/versions"
  for l in "${chain[@]}"; do
    layer_hash "$l"
    [[ -n "$(read_list "$LANGS_DIR/$l/packages")" ]] || continue   # no packages, no layer
    dir="$SB/layer-$l-${LAYER_HASH[$l]}"
    if [[ ! -f "$dir/layer.tar" ]]; then
      t0=$SECONDS; check_overlay
      safe_rm "$dir.tmp"; mkdir -p "$dir.tmp"
      build_layer "$l" "$dir.tmp" "$lowers"
      safe_rm "$dir"; mv "$dir.tmp" "$dir"
      log "$l layer: $(du -h "$dir/layer.tar" | cut -f1) in $((SECONDS - t0)) s"
    fi
    tars+=("$dir/layer.tar"); lowers="$dir/upper:$lowers"; TOP_VERSIONS="$dir/versions"
  done
  LAYERS_OF_LANG=("${tars[@]}")
}

# ---------------------------------------------------------------------------------------------
# 3. runner layer

RUNNER_LAYER=""
ensure_runner() {
  local bin sum dir
  if [[ -n "${RCE_RUNNER_BIN:-}" ]]; then
    bin="$RCE_RUNNER_BIN"
  elif bin="$RCE_CACHE/cargo-target/$RUNNER_TARGET/release/rce-runner" && [[ -x "$bin" ]] \
      && [[ -z "$(find "$HERE/runner" "$HERE/../operator/api" "$HERE/../Cargo.lock" "$HERE/../Cargo.toml" -newer "$bin" -print -quit)" ]]; then
    # Up to date (its sources: the runner and the domain core it builds on): skip cargo, whose
    # lock on the shared target dir may be held for minutes.
    log "rce-runner is up to date ($bin)"
  else
    log "cargo build --release -p rce-runner (static, $RUNNER_TARGET)"
    (cd "$HERE/.." && CARGO_TARGET_DIR="$RCE_CACHE/cargo-target" RUSTFLAGS="-C target-feature=+crt-static" \
      cargo build --release -p rce-runner --target "$RUNNER_TARGET") \
      || die "building rce-runner failed"
    bin="$RCE_CACHE/cargo-target/$RUNNER_TARGET/release/rce-runner"
  fi
  [[ -x "$bin" ]] || die "runner binary $bin missing"
  if file -b "$bin" 2>/dev/null | grep -q 'dynamically linked'; then die "$bin is not static"; fi
  sum="$(sha <"$bin" | cut -c1-16)"
  dir="$SB/runner-$sum"
  RUNNER_LAYER="$dir/layer.tar"
  [[ -f "$RUNNER_LAYER" ]] && return 0
  rm -rf "$dir.tmp"; mkdir -p "$dir.tmp/root/usr/local/bin" "$dir.tmp/root/etc/rce" "$dir.tmp/root/work" "$dir.tmp/root/tmp"
  install -m 0755 "$bin" "$dir.tmp/root/usr/local/bin/rce-runner"
  chmod 0755 "$dir.tmp/root" "$dir.tmp/root/usr" "$dir.tmp/root/usr/local" "$dir.tmp/root/usr/local/bin" "$dir.tmp/root/etc" "$dir.tmp/root/etc/rce"
  chmod 1777 "$dir.tmp/root/tmp" "$dir.tmp/root/work"
  tar_layer "$dir.tmp/root" "$dir.tmp/layer.tar"
  rm -rf "$dir.tmp/root" "$dir"; mv "$dir.tmp" "$dir"
}

# ---------------------------------------------------------------------------------------------
# 4. images, runtimes, index

# Upstream part of a Debian version: 1:3.11.2-1+b1 → 3.11.2, 18.19.0+dfsg-6~deb12u2 → 18.19.0.
upstream_version() { sed -E 's/^[0-9]+://; s/^.*[+]really//; s/-[^-]*$//; s/[+~](dfsg|ds|repack|really).*$//I'; }

semver() { # leading numeric components of a version, exactly three: 1.14.0.dfsg → 1.14.0
  local v out
  IFS= read -r v
  [[ "$v" =~ ^([0-9]+)(\.[0-9]+)?(\.[0-9]+)? ]] || { echo 0.0.0; return; }
  out="${BASH_REMATCH[1]}${BASH_REMATCH[2]:-.0}${BASH_REMATCH[3]:-.0}"
  echo "$out"
}

render_runtime() { # render_runtime LANG IMAGE VERSIONS-FILE OUT
  local lang="$1" image="$2" versions="$3" out="$4" text pkg v full
  text="$(cat "$LANGS_DIR/$lang/runtime.yaml")"
  while [[ "$text" =~ \{\{deb(full)?version:([a-zA-Z0-9.+-]+)\}\} ]]; do
    pkg="${BASH_REMATCH[2]}"
    full="$(awk -F'\t' -v p="$pkg" '$1 == p { print $2 }' "$versions")"
    [[ -n "$full" ]] || die "$lang: package $pkg is not installed in the image"
    v="$(upstream_version <<<"$full")"
    text="${text//"{{debversion:$pkg}}"/$v}"
    text="${text//"{{debfullversion:$pkg}}"/$full}"
  done
  # {{semver:PKG}}: the upstream version as SemVer "x.y.z" (Piston's lists), padded with zeros:
  # 17.0.13+11 → 17.0.13, 1.14.0.dfsg → 1.14.0, 4.2.2.20221110 → 4.2.2, 9.0 → 9.0.0.
  while [[ "$text" =~ \{\{semver:([a-zA-Z0-9.+-]+)\}\} ]]; do
    pkg="${BASH_REMATCH[1]}"
    full="$(awk -F'\t' -v p="$pkg" '$1 == p { print $2 }' "$versions")"
    [[ -n "$full" ]] || die "$lang: package $pkg is not installed in the image"
    v="$(upstream_version <<<"$full" | semver)"
    text="${text//"{{semver:$pkg}}"/$v}"
  done
  text="${text//"{{image}}"/$image}"
  printf '%s\n' "$text" >"$out.tmp"
  yq -e '.apiVersion == "rce.dev/v1alpha1" and .kind == "Runtime" and (.spec.image | length > 0)' "$out.tmp" >/dev/null \
    || die "$lang: runtime.yaml is not a valid Runtime"
  mv "$out.tmp" "$out"
}

build_lang() {
  local lang="$1" env_json h tag ref out
  ensure_layers "$lang"
  # Image Env: defaults + the Runtime's env (one source of truth: runtime.yaml).
  env_json="$(yq -c --arg path "$IMAGE_PATH" '
      ["PATH=" + $path, "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "HOME=/work", "TMPDIR=/tmp"]
      + [(.spec.env // [])[] | .name + "=" + .value]' "$LANGS_DIR/$lang/runtime.yaml")"
  h="$( { printf '%s\n' "${LAYERS_OF_LANG[@]}" "$RUNNER_LAYER" "$env_json" "$lang"; echo v1; } | sha)"
  tag="${h:0:12}"
  ref="$REGISTRY/sandbox-$lang:$tag"
  out="$IMAGES/$lang-$tag.tar"
  if [[ ! -f "$out" ]]; then
    log "$lang: writing image $ref"
    "$HERE/../hack/mkimage.sh" "$out" "$ref" --entrypoint '["/usr/local/bin/rce-runner"]' \
      --env "$env_json" --user 65534:65534 --workdir /work "${LAYERS_OF_LANG[@]}" "$RUNNER_LAYER"
  fi
  mkdir -p "$IMAGES/runtimes"
  render_runtime "$lang" "$ref" "$TOP_VERSIONS" "$IMAGES/runtimes/$lang.yaml"
  BUILT_LINES+=("$lang"$'\t'"$ref"$'\t'"$out")
  log "$lang: $ref ($(du -h "$out" | cut -f1))"
}

# Removes cached artifacts no current recipe uses: base and layers of other hashes, images not
# in the index, interrupted builds, all but the two newest runner layers. The apt and
# debootstrap .deb caches are kept (they make rebuilds fast).
gc_cache() {
  local -A keep=() ; local l d f n=0
  base_dir; keep[$BASE_DIR]=1
  for d in "$LANGS_DIR"/*/; do
    l="$(basename "$d")"; layer_hash "$l"; keep[$SB/layer-$l-${LAYER_HASH[$l]}]=1
  done
  for d in "$SB"/base-* "$SB"/layer-* "$SB"/*.tmp; do
    [[ -e "$d" && -z "${keep[$d]:-}" ]] || continue
    safe_rm "$d"; n=$((n + 1))
  done
  while IFS= read -r d; do safe_rm "$d"; n=$((n + 1)); done < <(ls -dt "$SB"/runner-* 2>/dev/null | tail -n +3)
  # Only this script's own image tars (<lang>-<hash12>.tar of a catalog language): other
  # scripts keep their images in the same directory.
  for d in "$LANGS_DIR"/*/; do
    l="$(basename "$d")"
    for f in "$IMAGES/$l"-*.tar; do
      [[ -f "$f" && "$(basename "$f")" =~ ^$l-[0-9a-f]{12}\.tar$ ]] || continue
      if ! cut -f3 "$IMAGES/index.tsv" 2>/dev/null | grep -qxF "$f"; then rm -f "$f"; n=$((n + 1)); fi
    done
  done
  for f in "$IMAGES"/runtimes/*.yaml; do
    [[ -f "$f" ]] || continue
    if ! cut -f1 "$IMAGES/index.tsv" 2>/dev/null | grep -qxF "$(basename "$f" .yaml)"; then rm -f "$f"; n=$((n + 1)); fi
  done
  # Downloaded .debs (kept between builds, bind-mounted into the chroots): drop old ones.
  find "$SB/apt-archives" "$SB/debootstrap-debs" -name '*.deb' -ctime +30 -delete 2>/dev/null || true
  log "gc: removed $n stale cache entries ($(du -sh "$RCE_CACHE/sandbox" | cut -f1) in $SB, $(du -sh "$IMAGES" | cut -f1) in $IMAGES)"
}

write_index() {
  local idx="$IMAGES/index.tsv" line lang
  declare -A rows=()
  if [[ -f "$idx" ]]; then
    while IFS=$'\t' read -r lang rest; do
      if [[ -n "$lang" && -d "$LANGS_DIR/$lang" ]]; then rows[$lang]="$lang"$'\t'"$rest"; fi
    done <"$idx"
  fi
  for line in "${BUILT_LINES[@]}"; do rows[${line%%$'\t'*}]="$line"; done
  for lang in "${!rows[@]}"; do printf '%s\n' "${rows[$lang]}"; done | sort >"$idx.tmp"
  mv "$idx.tmp" "$idx"
  : >"$IMAGES/runtimes.yaml.tmp"
  while IFS=$'\t' read -r lang _; do
    { echo "---"; cat "$IMAGES/runtimes/$lang.yaml"; } >>"$IMAGES/runtimes.yaml.tmp"
  done <"$idx"
  mv "$IMAGES/runtimes.yaml.tmp" "$IMAGES/runtimes.yaml"
}

# Into the containerd of every node of the local cluster (hack/cluster.sh: node 1's
# /run/containerd/containerd.sock and each extra node's own), then untaint the extra nodes that
# have every image (they register tainted, so that nothing lands on a node without images).
import_images() {
  local line tar node sock present ref t0 count
  local nodes; nodes="$(node_sockets)"
  if [[ -z "$nodes" ]]; then
    log "no node's containerd answers (node 1: /run/containerd/containerd.sock): not importing"
    return 0
  fi
  while read -r node sock; do
    present="$(ctr -a "$sock" -n k8s.io images ls -q 2>/dev/null || true)"
    t0=$SECONDS; count=0
    for line in "${BUILT_LINES[@]}"; do
      tar="${line##*$'\t'}"; ref="$(cut -f2 <<<"$line")"
      if grep -qxF "$ref" <<<"$present"; then continue; fi
      log "importing $(basename "$tar") into the containerd of $node (k8s.io)"
      ctr -a "$sock" -n k8s.io images import "$tar" >/dev/null || die "ctr import of $tar into $node failed"
      count=$((count + 1))
    done
    log "$node: $count images imported in $((SECONDS - t0)) s, $((${#BUILT_LINES[@]} - count)) were there"
  done <<<"$nodes"
  for node in $(extra_nodes); do
    if ! grep -q "^$node " <<<"$nodes"; then
      log "$node is not running: not importing (hack/cluster.sh start-node $node imports what it lacks)"
    fi
  done
  if [[ -f "$RCE_STATE/kubeconfig" && -n "$(extra_nodes)" ]]; then "$RCE_ROOT/hack/cluster.sh" update-taints; fi
}

# ---------------------------------------------------------------------------------------------

main() {
  # Build in a private mount namespace: whatever happens, no mount outlives this script.
  if [[ -z "${RCE_SANDBOX_NS:-}" && $EUID -eq 0 && " $* " != *" --list "* ]]; then
    RCE_SANDBOX_NS=1 exec unshare --mount --propagation private -- "$0" "$@"
  fi
  local do_import=0 do_gc=0 langs=() t0=$SECONDS
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --list) [[ -f "$IMAGES/index.tsv" ]] && cat "$IMAGES/index.tsv"; return 0;;
      --import) do_import=1;;
      --gc) do_gc=1;;
      -h|--help) usage; return 0;;
      -*) usage >&2; die "unknown option $1";;
      *) langs+=("$1");;
    esac; shift
  done
  if ((do_gc)) && [[ ${#langs[@]} -eq 0 ]]; then
    [[ $EUID -eq 0 ]] || die "run as root"
    exec 9>"$SB/.lock"; flock 9; gc_cache; return 0
  fi
  local all=0
  if [[ ${#langs[@]} -eq 0 ]]; then
    all=1
    for d in "$LANGS_DIR"/*/; do langs+=("$(basename "$d")"); done
  fi
  for l in "${langs[@]}"; do [[ -f "$LANGS_DIR/$l/runtime.yaml" ]] || die "unknown language $l"; done
  [[ $EUID -eq 0 ]] || die "run as root (debootstrap, overlay mounts, chroot)"
  need_pkgs debootstrap jq yq attr file tar
  mkdir -p "$SB" "$IMAGES"
  # One build at a time per cache.
  exec 9>"$SB/.lock"; flock 9
  ensure_base
  ensure_runner
  BUILT_LINES=()
  for l in "${langs[@]}"; do build_lang "$l"; done
  write_index
  if ((all || do_gc)); then gc_cache; fi
  if ((do_import)); then import_images; fi
  log "done in $((SECONDS - t0)) s: ${langs[*]}"
}

main "$@"
