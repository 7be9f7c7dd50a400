#!/usr/bin/env bash
# sandbox-images/test-images.sh — check the built sandbox images without a cluster.
#
#   test-images.sh [-k] [--no-runner] [LANG...]  (default: every language in images/index.tsv)
#     -k           keep the unpacked root filesystems (prints where)
#     --no-runner  skip the second pass through the image's entrypoint
#
# For each image: unpack its docker-archive tar layer by layer (docker whiteouts applied) into a
# temporary root filesystem, check the image config and the runner binary, then for each test
# program in langs/<lang>/tests/ compile (if the Runtime has a compile command) and run it the
# way a sandbox Pod would: in fresh mount/pid/net/ipc/uts namespaces, the root filesystem
# read-only, tmpfs on /work and /tmp only, no network, as uid:gid 12345:12345 (a uid that
# exists nowhere in the image), with the environment the runner gives every stage (PATH,
# HOME=/work, LANG=C.UTF-8, TMPDIR=/tmp, then the Runtime's env; the image's Env is not used).
#   hello.<ext>          must compile, exit 0, print "hello, world"
#   echo.<ext>           must copy stdin to stdout (a file tests/no-stdin waives it)
#   compile_error.<ext>  must fail to compile (required for compiled languages)
#   NAME.<ext> + NAME.expected [+ NAME.stdin]   must print NAME.expected
# Each test runs twice: the Runtime's commands directly, then through the image's entrypoint
# (/usr/local/bin/rce-runner) with a RunRequest built from the Runtime's defaults, as the
# operator would. Output comparison trims trailing white space per line, like the judge.
# Needs root.
# Exits non-zero if anything failed; prints one line per language with the image size.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../hack/common.sh
source "$HERE/../hack/common.sh"
IMAGES="$RCE_CACHE/images"
TEST_UID=12345

# ---------------------------------------------------------------------------------------------
# --inside ROOT SRC DEST OUTDIR: runs in the new namespaces (see sandbox_run).
if [[ "${1:-}" == --inside ]]; then
  root="$2"; src="$3"; dest="$4"; out="$5"
  mount --make-rprivate /
  mount --bind "$root" "$root"
  mount -o remount,bind,ro "$root"
  mount -t tmpfs -o mode=0777,size=512m,nosuid,nodev tmpfs "$root/work"
  mount -t tmpfs -o mode=1777,size=512m,nosuid,nodev tmpfs "$root/tmp"
  mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
  mount -t tmpfs -o mode=0755,size=1m,nosuid tmpfs "$root/dev"
  for n in null zero full random urandom tty; do
    : >"$root/dev/$n"; mount --bind "/dev/$n" "$root/dev/$n"
  done
  mkdir "$root/dev/shm"; mount -t tmpfs -o mode=1777,size=64m,nosuid,nodev tmpfs "$root/dev/shm"
  ln -s /proc/self/fd "$root/dev/fd"; ln -s fd/0 "$root/dev/stdin"; ln -s fd/1 "$root/dev/stdout"; ln -s fd/2 "$root/dev/stderr"
  install -o "$TEST_UID" -g "$TEST_UID" -m 0644 "$src" "$root/work/$dest"
  mapfile -d '' -t envv <"$out/env"
  run_step() { # run_step NAME STDIN
    local -a argv; mapfile -d '' -t argv <"$out/$1.argv"
    local t0 rc=0; t0=$(date +%s%N)
    timeout -k 2 60 chroot --userspec="$TEST_UID:$TEST_UID" "$root" /usr/bin/env -i -C /work "${envv[@]}" "${argv[@]}" \
      <"$2" >"$out/$1.out" 2>"$out/$1.err" || rc=$?
    echo "$rc" >"$out/$1.rc"; echo $(( ($(date +%s%N) - t0) / 1000000 )) >"$out/$1.ms"
  }
  [[ -f "$out/compile.argv" ]] && run_step compile /dev/null
  if [[ ! -f "$out/compile.rc" || "$(cat "$out/compile.rc")" == 0 ]]; then run_step run "$out/stdin"; fi
  # The same program through the image's entrypoint, the rce runner, in a fresh work dir.
  if [[ -f "$out/request.json" ]]; then
    find "$root/work" "$root/tmp" -mindepth 1 -delete
    install -o "$TEST_UID" -g "$TEST_UID" -m 0644 "$out/request.json" "$root/tmp/request.json"
    rc=0
    timeout -k 2 120 chroot --userspec="$TEST_UID:$TEST_UID" "$root" /usr/bin/env -i -C /work \
      /usr/local/bin/rce-runner /tmp/request.json >"$out/runner.out" 2>"$out/runner.err" || rc=$?
    echo "$rc" >"$out/runner.rc"
  fi
  exit 0
fi

# ---------------------------------------------------------------------------------------------

keep=0; runner=1; langs=()
while [[ $# -gt 0 ]]; do
  case "$1" in -k) keep=1;; --no-runner) runner=0;; -*) die "unknown option $1";; *) langs+=("$1");; esac; shift
done
[[ $EUID -eq 0 ]] || die "run as root (namespaces, mounts, chroot)"
[[ -f "$IMAGES/index.tsv" ]] || die "no $IMAGES/index.tsv: run sandbox-images/build.sh first"
command -v jq >/dev/null && command -v yq >/dev/null || need_pkgs jq yq
if [[ ${#langs[@]} -eq 0 ]]; then mapfile -t langs < <(cut -f1 "$IMAGES/index.tsv"); fi

WORK="$(mktemp -d /var/tmp/rce-test-images.XXXXXX)"
cleanup() { ((keep)) || rm -rf --one-file-system "$WORK"; }
trap cleanup EXIT

# Judge-style normalisation: trailing white space of each line and trailing empty lines dropped.
norm() { sed -e 's/[[:space:]]*$//' "$1" | sed -e ':a' -e '/^\n*$/{$d;N;ba' -e '}'; }

# unpack TAR ROOT: applies the image's layers in order.
unpack() {
  local tar="$1" root="$2" img="$2.img" layer e d
  mkdir -p "$img" "$root"
  tar -xf "$tar" -C "$img"
  while IFS= read -r layer; do
    # Whiteouts first (they delete what the layers below put there), then the contents.
    while IFS= read -r e; do
      e="${e#./}"; d="$(dirname "$e")"
      case "$(basename "$e")" in
        .wh..wh..opq) if [[ -d "$root/$d" ]]; then find "$root/$d" -mindepth 1 -maxdepth 1 -exec rm -rf {} +; fi ;;
        .wh.*) b="$(basename "$e")"; rm -rf "${root:?}/$d/${b#.wh.}" ;;
      esac
    done < <(tar -tf "$img/$layer" | grep -E '(^|/)\.wh\.[^/]*$' || true)
    tar -xf "$img/$layer" -C "$root" --numeric-owner --same-permissions --exclude='.wh.*'
  done < <(jq -r '.[0].Layers[]' "$img/manifest.json")
}

# sandbox_run ROOT SRC DEST CASE-DIR: compile + run one program (argv/env files in CASE-DIR).
sandbox_run() {
  unshare --mount --pid --net --ipc --uts --fork --kill-child -- "$0" --inside "$@"
}

fail_total=0
declare -A base_seen=()
for lang in "${langs[@]}"; do
  line="$(awk -F'\t' -v l="$lang" '$1 == l' "$IMAGES/index.tsv")"
  [[ -n "$line" ]] || { echo "FAIL $lang: not in $IMAGES/index.tsv"; fail_total=$((fail_total + 1)); continue; }
  ref="$(cut -f2 <<<"$line")"; tar="$(cut -f3 <<<"$line")"
  rt="$IMAGES/runtimes/$lang.yaml"
  fails=(); notes=()
  lw="$WORK/$lang"; root="$lw/rootfs"; mkdir -p "$lw"
  unpack "$tar" "$root"
  cfg="$lw/rootfs.img/$(jq -r '.[0].Config' "$lw/rootfs.img/manifest.json")"
  base_layer="$(jq -r '.[0].Layers[0]' "$lw/rootfs.img/manifest.json")"
  base_seen[$base_layer]="$(du -h "$lw/rootfs.img/$base_layer" | cut -f1)"

  # Image config and runner.
  [[ "$(jq -r '.[0].RepoTags[0]' "$lw/rootfs.img/manifest.json")" == "$ref" ]] || fails+=("image ref is not $ref")
  [[ "$(jq -c .config.Entrypoint "$cfg")" == '["/usr/local/bin/rce-runner"]' ]] || fails+=("entrypoint")
  [[ "$(jq -r .config.User "$cfg")" =~ ^[1-9][0-9]*(:[0-9]+)?$ ]] || fails+=("user is root or not numeric")
  [[ "$(jq -r .config.WorkingDir "$cfg")" == /work ]] || fails+=("workdir")
  [[ "$(yq -r .spec.image "$rt")" == "$ref" ]] || fails+=("runtime image is not $ref")
  [[ -x "$root/usr/local/bin/rce-runner" ]] || fails+=("no /usr/local/bin/rce-runner")
  if file -b "$root/usr/local/bin/rce-runner" | grep -q 'dynamically linked'; then fails+=("rce-runner is not static"); fi
  for d in work tmp etc/rce; do [[ -d "$root/$d" ]] || fails+=("no /$d"); done
  [[ "$(stat -c %a "$root/tmp")" == 1777 ]] || fails+=("/tmp is not 1777")
  unreadable="$(find "$root/usr" "$root/etc/alternatives" ! -type l ! -perm -o+r 2>/dev/null | head -5)"
  [[ -z "$unreadable" ]] || fails+=("not world-readable: ${unreadable//$root/}")

  # Environment: what the runner (runner/src/stage.rs) gives every stage, then the Runtime's env.
  { printf '%s\0' PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/work LANG=C.UTF-8 TMPDIR=/tmp; yq -j '(.spec.env // [])[] | .name + "=" + .value + "\u0000"' "$rt"; } >"$lw/env"
  src_name="$(yq -r .spec.sourceFile "$rt")"
  ntests=0
  for t in "$HERE/langs/$lang/tests"/*; do
    [[ -f "$t" ]] || continue
    name="$(basename "$t")"; kind="${name%%.*}"
    case "$name" in *.expected|*.stdin|no-stdin) continue;; esac
    case "$kind" in
      hello|echo|compile_error) ;;
      *) [[ -f "${t%.*}.expected" ]] || continue;;
    esac
    ntests=$((ntests + 1))
    c="$lw/case-$kind"; mkdir -p "$c"; cp "$lw/env" "$c/env"
    # argv files, {file} replaced by the entry file's name
    if [[ "$(yq -r '.spec.compile // empty | length' "$rt")" != "" ]]; then
      yq -j --arg f "$src_name" '.spec.compile[] | select(. != "{options}") | gsub("\\{file\\}"; $f) + "\u0000"' "$rt" >"$c/compile.argv"
    fi
    yq -j --arg f "$src_name" '.spec.run[] | gsub("\\{file\\}"; $f) + "\u0000"' "$rt" >"$c/run.argv"
    case "$kind" in
      echo) printf 'first line\n  indented, ünïcödé ✓ \t\n\nlast line: 12345 %s\n' "$lang" >"$c/stdin";;
      *) if [[ -f "${t%.*}.stdin" ]]; then cp "${t%.*}.stdin" "$c/stdin"; else : >"$c/stdin"; fi;;
    esac
    if ((runner)); then
      # A RunRequest (runner/src/protocol.rs) as the operator would build it from the Runtime.
      yq -c --arg f "$src_name" --rawfile content "$t" --rawfile stdin "$c/stdin" '
        def lim: {wallTimeMs, cpuTimeMs, memoryKib: (.memoryMiB * 1024), processes, outputBytes,
                  fileSizeKib: .fileSizeKiB};
        {files: [{name: $f, content: $content}], stdin: $stdin, args: [],
         compile: (.spec.compile | if . then map(select(. != "{options}")) else . end), run: .spec.run,
         env: [(.spec.env // [])[] | [.name, .value]],
         limits: (.spec.defaultLimits | lim),
         compileLimits: ((.spec.compileLimits // .spec.defaultLimits) | lim)}' "$rt" >"$c/request.json"
    fi
    sandbox_run "$root" "$t" "$src_name" "$c" || true
    if ((runner)); then
      res="$(grep -sF '{"rceResult":' "$c/runner.out" | tail -1 || true)"
      if [[ -z "$res" ]]; then
        fails+=("$kind via rce-runner: no result line (rc $(cat "$c/runner.rc" 2>/dev/null); $(head -c 300 "$c/runner.err" 2>/dev/null | tr '\n' ' '))")
      else
        outcome="$(jq -r .rceResult.outcome <<<"$res")"
        case "$kind" in
          compile_error) [[ "$outcome" == compileError ]] || fails+=("compile_error via rce-runner: outcome $outcome");;
          *)
            jq -j '.rceResult.run.stdoutBase64 // "" | @base64d' <<<"$res" >"$c/runner.stdout"
            case "$kind" in hello) want="hello, world";; echo) want="$(norm "$c/stdin")";; *) want="$(norm "${t%.*}.expected")";; esac
            if [[ "$outcome" != ran || "$(jq -r '.rceResult.run.exitCode' <<<"$res")" != 0 || "$(norm "$c/runner.stdout")" != "$want" ]]; then
              fails+=("$kind via rce-runner: $(jq -c '.rceResult | {outcome, message, compile: (.compile // {} | {exitCode, limit, stderr: (.stderrBase64 // "" | @base64d)[:300]}), run: (.run // {} | {exitCode, signalName, limit, stdout: (.stdoutBase64 // "" | @base64d)[:100], stderr: (.stderrBase64 // "" | @base64d)[:300]})}' <<<"$res")")
            fi
            if [[ "$kind" == hello ]]; then
              notes+=("runner: $(jq -r '.rceResult | [(if .compile then "compile \(.compile.wallTimeMs) ms" else empty end), "run \(.run.wallTimeMs) ms \(.run.memoryKib / 1024 | floor) MiB"] | join(", ")' <<<"$res")")
            fi;;
        esac
      fi
    fi
    crc="$(cat "$c/compile.rc" 2>/dev/null || echo 0)"
    case "$kind" in
      compile_error)
        if [[ ! -f "$c/compile.argv" ]]; then fails+=("compile_error test for a language without compile"); continue; fi
        if [[ "$crc" == 0 ]]; then fails+=("compile_error: compiled (rc 0)")
        elif [[ "$crc" == 124 || "$crc" == 137 ]]; then fails+=("compile_error: compiler timed out")
        elif [[ ! -s "$c/compile.err" && ! -s "$c/compile.out" ]]; then fails+=("compile_error: no diagnostics")
        fi;;
      *)
        if [[ "$crc" != 0 ]]; then
          fails+=("$kind: compile rc $crc: $(head -c 400 "$c/compile.err" "$c/compile.out" 2>/dev/null | tr '\n' ' ')"); continue
        fi
        rrc="$(cat "$c/run.rc")"
        case "$kind" in
          hello) expected="hello, world";;
          echo) expected="$(norm "$c/stdin")";;
          *) expected="$(norm "${t%.*}.expected")";;
        esac
        if [[ "$rrc" != 0 ]]; then
          fails+=("$kind: run rc $rrc: $(head -c 400 "$c/run.err" | tr '\n' ' ')")
        elif [[ "$(norm "$c/run.out")" != "$expected" ]]; then
          fails+=("$kind: wrong output: $(head -c 200 "$c/run.out" | tr '\n' '|') stderr: $(head -c 200 "$c/run.err" | tr '\n' ' ')")
        fi
        if [[ "$kind" == hello ]]; then
          notes+=("hello: $([[ -f "$c/compile.ms" ]] && echo "compile $(cat "$c/compile.ms") ms, ")run $(cat "$c/run.ms") ms")
        fi
        ;;
    esac
  done
  compgen -G "$HERE/langs/$lang/tests/hello.*" >/dev/null || fails+=("no hello test")
  compgen -G "$HERE/langs/$lang/tests/echo.*" >/dev/null || [[ -f "$HERE/langs/$lang/tests/no-stdin" ]] || fails+=("no echo test")
  [[ -f "$HERE/langs/$lang/tests/compile_error.$(ls "$HERE/langs/$lang/tests" | sed -n 's/^hello\.//p' | head -1)" || ! -f "$lw/case-hello/compile.argv" ]] \
    || fails+=("compiled language without a compile_error test")
  size="$(du -h "$tar" | cut -f1)"
  if ((${#fails[@]} == 0)); then
    printf 'PASS %-11s %6s  %s  (%s tests; %s)\n' "$lang" "$size" "$ref" "$ntests" "$(printf '%s; ' "${notes[@]}" | sed 's/; $//')"
  else
    printf 'FAIL %-11s %6s  %s\n' "$lang" "$size" "$ref"
    printf '       - %s\n' "${fails[@]}"
    fail_total=$((fail_total + 1))
  fi
  ((keep)) && echo "       rootfs kept in $root" || rm -rf --one-file-system "$lw"
done
for l in "${!base_seen[@]}"; do echo "base layer ${l%%/*}: ${base_seen[$l]}"; done
if ((fail_total)); then echo "$fail_total image(s) FAILED"; exit 1; fi
echo "all ${#langs[@]} image(s) passed"
