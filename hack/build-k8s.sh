#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager, kube-scheduler and kubelet v1.20.2 from
# Debian bookworm's source package, once, into a versioned cache outside the checkout.
# Idempotent: exits at once when the binaries are already cached.
set -euo pipefail
source "$(dirname "$0")/common.sh"

out="$K8S_BIN"
if [[ -x "$out/kube-apiserver" && -x "$out/kubelet" && -x "$out/kube-scheduler" && -x "$out/kube-controller-manager" ]]; then
  log "kubernetes $K8S_VERSION binaries cached in $out"
  exit 0
fi
need_pkgs golang-go rsync quilt dpkg-dev golang-github-modern-go-reflect2-dev
work="$RCE_CACHE/k8s-src-$K8S_VERSION"
rm -rf "$work"; mkdir -p "$work/lists/partial" "$work/src"
echo "deb-src http://deb.debian.org/debian bookworm main" > "$work/sources.list"
apt_opts=(-o Dir::Etc::SourceList="$work/sources.list" -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists="$work/lists")
log "fetching Debian's kubernetes source package"
apt-get "${apt_opts[@]}" update -qq
(cd "$work/src" && apt-get "${apt_opts[@]}" source --download-only kubernetes >/dev/null)
(cd "$work/src" && dpkg-source --no-check -x kubernetes_*.dsc tree >/dev/null)
src="$work/src/tree"
# dpkg-source already applies the quilt series for 3.0 (quilt) packages; check, apply if not.
if [[ -f "$src/debian/patches/series" ]] && ! (cd "$src" && QUILT_PATCHES=debian/patches quilt applied >/dev/null 2>&1); then
  (cd "$src" && QUILT_PATCHES=debian/patches quilt push -a >/dev/null)
fi
# Trap 1 of LOCAL-CLUSTER.md: the vendored reflect2 1.0.1 faults under Go >= 1.18.
rm -f "$src"/vendor/github.com/modern-go/reflect2/*.go
cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go "$src/vendor/github.com/modern-go/reflect2/"
mkdir -p "$src/.go/src/k8s.io" "$work/home"
ln -sfn "$src" "$src/.go/src/k8s.io/kubernetes"
log "building kubernetes $K8S_VERSION (about 7 minutes on 2 cores)"
(cd "$src/.go/src/k8s.io/kubernetes" && \
  GOPATH="$src/.go" CGO_ENABLED=0 HOME="$work/home" GOFLAGS=-mod=vendor GO111MODULE=on \
  KUBE_GIT_VERSION="$K8S_VERSION" KUBE_GIT_TREE_STATE=clean \
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubelet" >"$work/build.log" 2>&1) \
  || { tail -30 "$work/build.log" >&2; die "kubernetes build failed; log: $work/build.log"; }
mkdir -p "$out.tmp"
cp "$src"/_output/bin/{kube-apiserver,kube-controller-manager,kube-scheduler,kubelet} "$out.tmp/"
rm -rf "$out"; mv "$out.tmp" "$out"
rm -rf "$work"
log "kubernetes binaries in $out"
