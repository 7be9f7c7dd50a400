#!/usr/bin/env bash
# build-gvisor.sh [OUT_DIR]: gVisor for the local cluster's `gvisor` RuntimeClass (make up
# runs it; cached, so later runs return at once).
#
# Builds gVisor's containerd shim (containerd-shim-runsc-v1, runtime type
# io.containerd.runsc.v1) from Debian packages only, and puts Debian's matching
# runsc binary next to it. Default OUT_DIR: /var/cache/rce/gvisor-20240729.0/bin
#
# Why these versions: Debian bookworm's own golang-gvisor-gvisor (0.0~20221219.0)
# ships no shim (debian/rules excludes it), and its orig tarball, which has the
# shim source, is not served by every mirror. bookworm-backports carries
# 0.0~20240729.0-4~bpo12+2: runsc, golang-gvisor-gvisor-dev (the library tree)
# and, as a source package, the orig tarball whose shim/ and pkg/shim/ we build.
# The shim is written for containerd 1.4's Go API; three small patches below
# port it to bookworm's golang-github-containerd-containerd-dev 1.6.20 and fix a
# Cleanup bug. Go 1.22 comes from bookworm-backports (golang-1.22-go).
#
# Nothing is installed system-wide except, if missing, g++ (to build the vdso
# that gVisor's Go packages embed) and patch. Every Go package is a Debian
# golang-*-dev .deb, downloaded with apt-get and unpacked into a private tree;
# the build runs in GOPATH mode with GOPROXY=off (no module download at all).
# Network use: apt only (Debian mirror, env DEBIAN_MIRROR).
#
# Idempotent: when OUT_DIR already holds binaries built by this same script
# (stamp file), it exits at once. KEEP_WORK=1 keeps the work tree.
set -euo pipefail

GV_DEB_VERSION="0.0~20240729.0-4~bpo12+2"
GV_UPSTREAM="20240729.0"
GV_ORIG="golang-gvisor-gvisor_0.0~${GV_UPSTREAM}.orig.tar.gz"
GV_ORIG_SHA256="8677fe60daa0519bb77139c58fec6c9e4ea1ee12f9f673007c6c0e3545ef69d2"
GO_PKG_NAME="golang-1.22-go"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

OUT="${1:-${RCE_CACHE:-/var/cache/rce}/gvisor-${GV_UPSTREAM}/bin}"
OUT="$(mkdir -p "$OUT" && cd "$OUT" && pwd)"
BASE="$(dirname "$OUT")"
WORK="$BASE/build"
SELF_SHA="$(sha256sum "$0" | cut -d' ' -f1)"
STAMP="$OUT/.build-gvisor.stamp"
log() { echo "[build-gvisor $(date +%T)] $*" >&2; }

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$GV_DEB_VERSION $SELF_SHA" \
      && -x "$OUT/containerd-shim-runsc-v1" && -x "$OUT/runsc" ]]; then
  log "already built: $OUT (runsc $GV_DEB_VERSION)"
  exit 0
fi
[[ $(id -u) == 0 ]] || { echo "run as root (apt-get)" >&2; exit 1; }
ARCH="$(dpkg --print-architecture)"
case "$ARCH" in amd64|arm64) ;; *) echo "unsupported architecture $ARCH" >&2; exit 1 ;; esac
T0=$(date +%s)

# 1. Host tools (only what is missing).
need=()
for p in g++ patch; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if ((${#need[@]})); then
  log "apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# 2. A private apt configuration: bookworm + bookworm-backports (binary and source),
#    an empty dpkg status (so the whole Go dependency closure is resolved, not just
#    what this machine lacks), private lists and archives. The system's apt state
#    is not touched.
rm -rf "$WORK/root" "$WORK/gopath"
mkdir -p "$WORK/apt/lists/partial" "$WORK/apt/archives/partial" "$WORK/debs" "$WORK/src"
cat > "$WORK/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-backports main
deb-src $MIRROR bookworm-backports main
EOF
: > "$WORK/apt/status"
APT=(-o Dir::Etc::SourceList="$WORK/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
     -o Dir::State::Lists="$WORK/apt/lists" -o Dir::State::status="$WORK/apt/status"
     -o Dir::Cache::archives="$WORK/apt/archives" -o APT::Install-Recommends=false
     -o Debug::NoLocking=true -o APT::Sandbox::User=root)
log "apt update (private lists)"
apt-get "${APT[@]}" update -qq

# 3. Resolve the package closure as apt would install it, then download only the
#    Go source packages, the Go toolchain and runsc (no C libraries needed:
#    the shim is built with CGO_ENABLED=0).
want=(runsc="$GV_DEB_VERSION" golang-gvisor-gvisor-dev="$GV_DEB_VERSION" "$GO_PKG_NAME"
      golang-github-containerd-containerd-dev golang-github-burntsushi-toml-dev
      golang-github-containerd-cgroups-dev golang-github-containerd-console-dev
      golang-github-containerd-fifo-dev golang-github-containerd-typeurl-dev
      golang-github-gogo-protobuf-dev golang-github-sirupsen-logrus-dev
      golang-github-golang-protobuf-1-5-dev golang-golang-x-sys-dev)
apt-get "${APT[@]}" -s install -t bookworm-backports "${want[@]}" > "$WORK/apt/simulate.txt"
sed -nE 's/^Inst ((golang-|runsc)[^ ]*) \(([^ ]+) .*/\1=\3/p' "$WORK/apt/simulate.txt" \
  | sort > "$WORK/apt/download.txt"
log "download $(wc -l < "$WORK/apt/download.txt") .debs"
(cd "$WORK/debs" && for pv in $(cat "$WORK/apt/download.txt"); do
   p="${pv%%=*}"; v="${pv#*=}"; v="${v//:/%3a}"
   ls "${p}_${v}_"*.deb >/dev/null 2>&1 || echo "$pv"
 done | xargs -r apt-get "${APT[@]}" download -q >/dev/null)
log "unpack"
mkdir -p "$WORK/root"
for pv in $(cat "$WORK/apt/download.txt"); do
  p="${pv%%=*}"; v="${pv#*=}"; v="${v//:/%3a}"
  dpkg-deb -x "$(ls "$WORK/debs/${p}_${v}_"*.deb | head -1)" "$WORK/root"
done

# 4. The shim source: the orig tarball of the same Debian version. Some mirrors
#    serve the tarball but not the .dsc, so apt-get source may fail after fetching
#    it; the tarball is checked against its known SHA256 instead.
if [[ ! -f "$WORK/src/$GV_ORIG" ]] || ! echo "$GV_ORIG_SHA256  $WORK/src/$GV_ORIG" | sha256sum -c --quiet; then
  log "apt-get source --download-only golang-gvisor-gvisor=$GV_DEB_VERSION"
  (cd "$WORK/src" && apt-get "${APT[@]}" source --download-only -q "golang-gvisor-gvisor=$GV_DEB_VERSION" >/dev/null 2>&1) || true
fi
echo "$GV_ORIG_SHA256  $WORK/src/$GV_ORIG" | sha256sum -c --quiet \
  || { echo "could not fetch $GV_ORIG (sha256 $GV_ORIG_SHA256) from $MIRROR" >&2; exit 1; }

# 5. GOPATH: Debian's gVisor tree + shim/ and pkg/shim/ from the orig tarball.
GP="$WORK/gopath"; GV="$GP/src/gvisor.dev/gvisor"
mkdir -p "$GP/src/gvisor.dev"
mv "$WORK/root/usr/share/gocode/src/gvisor.dev/gvisor" "$GV"
tar -xzf "$WORK/src/$GV_ORIG" -C "$WORK/src"
ORIG_DIR="$WORK/src/golang-gvisor-gvisor-0.0~${GV_UPSTREAM}"
rm -rf "$GV/shim" "$GV/pkg/shim"
cp -a "$ORIG_DIR/shim" "$GV/shim"
cp -a "$ORIG_DIR/pkg/shim" "$GV/pkg/shim"

# 6. Port to containerd 1.6 (Debian bookworm) and fix Cleanup.
log "patch shim for containerd 1.6"
(cd "$GV" && patch -p1 -s --no-backup-if-mismatch) <<'PATCH'
--- a/pkg/shim/proc/exec.go
+++ b/pkg/shim/proc/exec.go
@@ -238,7 +238,7 @@
 		if err != nil {
 			return fmt.Errorf("failed to retrieve console master: %w", err)
 		}
-		if e.console, err = e.parent.Platform.CopyConsole(ctx, console, e.stdio.Stdin, e.stdio.Stdout, e.stdio.Stderr, &e.wg); err != nil {
+		if e.console, err = e.parent.Platform.CopyConsole(ctx, console, e.id, e.stdio.Stdin, e.stdio.Stdout, e.stdio.Stderr, &e.wg); err != nil {
 			return fmt.Errorf("failed to start console copy: %w", err)
 		}
 	} else if !e.stdio.IsNull() {
--- a/pkg/shim/proc/init.go
+++ b/pkg/shim/proc/init.go
@@ -155,7 +155,7 @@
 		if err != nil {
 			return fmt.Errorf("failed to retrieve console master: %w", err)
 		}
-		console, err = p.Platform.CopyConsole(ctx, console, r.Stdin, r.Stdout, r.Stderr, &p.wg)
+		console, err = p.Platform.CopyConsole(ctx, console, p.id, r.Stdin, r.Stdout, r.Stderr, &p.wg)
 		if err != nil {
 			return fmt.Errorf("failed to start console copy: %w", err)
 		}
--- a/pkg/shim/runsc/service_linux.go
+++ b/pkg/shim/runsc/service_linux.go
@@ -33,7 +33,7 @@
 	epoller *console.Epoller
 }
 
-func (p *linuxPlatform) CopyConsole(ctx context.Context, console console.Console, stdin, stdout, stderr string, wg *sync.WaitGroup) (console.Console, error) {
+func (p *linuxPlatform) CopyConsole(ctx context.Context, console console.Console, id, stdin, stdout, stderr string, wg *sync.WaitGroup) (console.Console, error) {
 	if p.epoller == nil {
 		return nil, fmt.Errorf("uninitialized epoller")
 	}
--- a/pkg/shim/service.go
+++ b/pkg/shim/service.go
@@ -149,7 +149,10 @@
 	return cmd, nil
 }
 
-func (s *service) StartShim(ctx context.Context, id, containerdBinary, containerdAddress, containerdTTRPCAddress string) (string, error) {
+// StartShim takes containerd 1.6's shim.StartOpts (containerd 1.4 passed the
+// fields as separate arguments).
+func (s *service) StartShim(ctx context.Context, startOpts shim.StartOpts) (string, error) {
+	id, containerdBinary, containerdAddress := startOpts.ID, startOpts.ContainerdBinary, startOpts.Address
 	log.L.Debugf("StartShim, id: %s, binary: %q, address: %q", id, containerdBinary, containerdAddress)
 
 	cmd, err := s.newCommand(ctx, containerdBinary, containerdAddress)
@@ -210,7 +213,7 @@
 	if err := shim.WriteAddress(shimAddressPath, address); err != nil {
 		return "", err
 	}
-	if err := shim.SetScore(cmd.Process.Pid); err != nil {
+	if err := shim.AdjustOOMScore(cmd.Process.Pid); err != nil {
 		return "", fmt.Errorf("failed to set OOM Score on shim: %w", err)
 	}
 	cu.Release()
--- a/pkg/shim/runsc/service.go
+++ b/pkg/shim/runsc/service.go
@@ -178,7 +178,7 @@
 	if err := st.load(path); err != nil {
 		return nil, err
 	}
-	r := proc.NewRunsc(s.opts.Root, path, ns, st.Options.BinaryName, nil, nil)
+	r := proc.NewRunsc(st.Options.Root, path, ns, st.Options.BinaryName, nil, nil)
 
 	if err := r.Delete(ctx, s.id, &runsccmd.DeleteOpts{
 		Force: true,
--- a/pkg/shim/runsc/state.go
+++ b/pkg/shim/runsc/state.go
@@ -31,7 +31,7 @@
 	Options options `json:"options"`
 }
 
-func (s state) load(path string) error {
+func (s *state) load(path string) error {
 	data, err := ioutil.ReadFile(filepath.Join(path, filename))
 	if err != nil {
 		return err
PATCH

# 7. The shim imports runsc/specutils -> runsc/config -> pkg/sentry/... ->
#    pkg/sentry/loader, whose init() parses the embedded vdso. Debian's -dev
#    package ships a 1-byte placeholder (the shim would panic at start), so build
#    the real one exactly as debian/rules does.
log "build vdso"
cp -a "$ORIG_DIR/vdso/." "$GV/vdso/"
(cd "$GV" && gcc -I. -O2 -std=c++11 -fPIC -fno-sanitize=all -fno-stack-protector -shared -nostdlib \
   -Wl,-soname=linux-vdso.so.1 -Wl,--hash-style=sysv -Wl,--no-undefined -Wl,-Bsymbolic \
   -Wl,-z,max-page-size=4096 -Wl,-z,common-page-size=4096 -Wl,-Tvdso/vdso_${ARCH}.lds \
   -o "pkg/sentry/loader/vdsodata/vdso_${ARCH}.so" vdso/vdso.cc vdso/vdso_time.cc)
if command -v python3 >/dev/null; then
  (cd "$GV" && python3 vdso/check_vdso.py --check-data --vdso="pkg/sentry/loader/vdsodata/vdso_${ARCH}.so")
fi

# 8. Build (GOPATH mode, Debian sources only, no network).
GOROOT="$WORK/root/usr/lib/go-1.22"
log "go build ./shim ($("$GOROOT/bin/go" version | cut -d' ' -f3))"
(cd "$GV" && env -u GOFLAGS -u GOPATH GOROOT="$GOROOT" PATH="$GOROOT/bin:$PATH" \
   GOPATH="$GP:$WORK/root/usr/share/gocode" GO111MODULE=off GOPROXY=off GOTOOLCHAIN=local \
   GOENV=off GOCACHE="$WORK/gocache" HOME="$WORK" CGO_ENABLED=0 \
   go build -trimpath -ldflags "-s -w" -o "$OUT/containerd-shim-runsc-v1.tmp" ./shim)
mv -f "$OUT/containerd-shim-runsc-v1.tmp" "$OUT/containerd-shim-runsc-v1"
install -m 0755 "$WORK/root/usr/bin/runsc" "$OUT/runsc.tmp" && mv -f "$OUT/runsc.tmp" "$OUT/runsc"

"$OUT/containerd-shim-runsc-v1" -v >/dev/null   # would panic on a bad vdso
"$OUT/runsc" --version >&2

# 9. The options file the shim reads (ConfigPath in containerd's config), and the
#    containerd CRI lines that go with it.
cat > "$BASE/runsc.toml" <<EOF
# gVisor shim options (read by containerd-shim-runsc-v1 at each container create).
binary_name = "$OUT/runsc"
root = "/run/containerd/runsc"
[runsc_config]
  # no network stack inside the sandbox (only loopback); the pod's CNI netns is unused
  network = "none"
  # systrap is the default of this runsc; ptrace also works here; kvm hangs here
  platform = "systrap"
  # enforce the pod's seccomp profile (RuntimeDefault) inside the sandbox too
  oci-seccomp = "true"
EOF
cat > "$BASE/containerd-runsc.toml.snippet" <<EOF
    # under [plugins."io.containerd.grpc.v1.cri".containerd]
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc]
      runtime_type = "$OUT/containerd-shim-runsc-v1"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runsc.options]
        TypeUrl = "io.containerd.runsc.v1.options"
        ConfigPath = "$BASE/runsc.toml"
EOF
echo "$GV_DEB_VERSION $SELF_SHA" > "$STAMP"
[[ "${KEEP_WORK:-0}" == 1 ]] || rm -rf "$WORK"
log "done in $(( $(date +%s) - T0 ))s: $OUT/{containerd-shim-runsc-v1,runsc}; $BASE/runsc.toml; $BASE/containerd-runsc.toml.snippet"
