#!/usr/bin/env bash
# mkimage.sh OUT.tar NAME:TAG [--entrypoint JSON] [--env JSON] [--user U] [--workdir D] LAYERDIR...
#
# Writes a docker-archive image tar (manifest.json, config JSON with rootfs.diff_ids, one
# uncompressed layer tar per LAYERDIR, in order) from plain directories. The result loads with
# `ctr -n k8s.io images import` and with `kind load image-archive`. Layer tars are
# reproducible (sorted, numeric owners, fixed mtime), so an unchanged layer keeps its digest
# and is shared between images that start from the same base. A LAYERDIR ending in .tar is
# taken as an already-built layer tar.
set -euo pipefail
out="$1"; ref="$2"; shift 2
entrypoint='null'; env='["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]'; user=""; workdir="/"
while [[ $# -gt 0 && "$1" == --* ]]; do
  case "$1" in
    --entrypoint) entrypoint="$2";; --env) env="$2";; --user) user="$2";; --workdir) workdir="$2";;
    *) echo "mkimage: unknown flag $1" >&2; exit 2;;
  esac; shift 2
done
[[ $# -ge 1 ]] || { echo "mkimage: no layers" >&2; exit 2; }
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
diff_ids=(); layers=()
for dir in "$@"; do
  if [[ -f "$dir" ]]; then cp "$dir" "$tmp/layer.tar"
  else
    tar --sort=name --numeric-owner --mtime='2020-01-01 00:00Z' --xattrs --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
      -C "$dir" -cf "$tmp/layer.tar" .
  fi
  sum="$(sha256sum "$tmp/layer.tar" | cut -d' ' -f1)"
  mkdir -p "$tmp/$sum"; mv "$tmp/layer.tar" "$tmp/$sum/layer.tar"
  diff_ids+=("\"sha256:$sum\""); layers+=("\"$sum/layer.tar\"")
done
join() { local IFS=,; echo "$*"; }
config="{\"architecture\":\"amd64\",\"os\":\"linux\",\"created\":\"2020-01-01T00:00:00Z\",\"config\":{\"Entrypoint\":$entrypoint,\"Env\":$env,\"WorkingDir\":\"$workdir\",\"User\":\"$user\"},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[$(join "${diff_ids[@]}")]}}"
csum="$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)"
printf '%s' "$config" > "$tmp/$csum.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":[%s]}]' "$csum" "$ref" "$(join "${layers[@]}")" > "$tmp/manifest.json"
mkdir -p "$(dirname "$out")"
tar -C "$tmp" --sort=name -cf "$out.tmp" . && mv "$out.tmp" "$out"
