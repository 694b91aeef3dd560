#!/usr/bin/env bash
# bench/podman_pull_run.sh: cold `podman pull` + `podman run` of the python image (issue 15), from
# the start of the pull to python3's first line of output, median of N runs per case:
#
#   podman             podman's normal pull of the gzip image (baseline)
#   stargz-store       stargz-store (bench/stargz-store/build.sh) as podman's additional layer
#                      store, the eStargz image
#   hoist-estargz      hoist-store as the additional layer store, the same eStargz image
#   hoist-zstdchunked  hoist-store, the image made by `hoist convert` (zstd:chunked)
#
# Usage (root: overlayfs, FUSE, drop_caches):
#   bench/podman_pull_run.sh [--runs N] [--hoist-store PATH] [--hoist PATH] [--stargz-store PATH]
#                            [--prefetch none|priority|all] [--timeout S] [--out DIR]
#
# --prefetch is hoist-store's `-o prefetch=` (default: hoist-store's own, all); stargz-store runs
# with its defaults (it fetches whole layers in the background too).
#
# Every run of every case starts from nothing: a new podman storage (graphroot, runroot, tmp
# dir; private storage.conf, containers.conf and registries.conf), a new store daemon with an
# empty root and cache, and the page cache dropped. Only the registry is kept: it lives under
# $HOIST_BENCH_CACHE/podman_pull_run/registry (default /var/cache/hoist-bench) and keeps the
# pushed and converted images between runs of the script (tags bench/py:gz, :estargz,
# :zstdchunked; made again when missing). The cases are rotated from round to round. Bytes are
# what the registry's access log says it sent during the timed commands (lazy stores keep
# fetching in the background afterwards; that is not counted). podman runs with runc and
# cgroupfs, `--network none` and the ulimits this machine needs (README, hoist-store). The
# registry is on loopback only.
#
# Prints markdown on stdout; progress on stderr. --out DIR keeps the per-run TSV and the logs.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
CACHE=${HOIST_BENCH_CACHE:-/var/cache/hoist-bench}
RUNS=5
HSTORE=
HOIST=${HOIST:-}
SGSTORE=
TIMEOUT=600
OUT=
PREFETCH=
usage() {
  echo "usage: $0 [--runs N] [--hoist-store PATH] [--hoist PATH] [--stargz-store PATH] [--prefetch MODE] [--timeout S] [--out DIR]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) [ $# -ge 2 ] || usage; RUNS=$2; shift 2 ;;
    --hoist-store) [ $# -ge 2 ] || usage; HSTORE=$2; shift 2 ;;
    --hoist) [ $# -ge 2 ] || usage; HOIST=$2; shift 2 ;;
    --stargz-store) [ $# -ge 2 ] || usage; SGSTORE=$2; shift 2 ;;
    --prefetch) [ $# -ge 2 ] || usage; PREFETCH=$2; shift 2 ;;
    --timeout) [ $# -ge 2 ] || usage; TIMEOUT=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || usage; OUT=$2; shift 2 ;;
    *) usage ;;
  esac
done
die() { echo "bench/podman_pull_run.sh: $*" >&2; exit 1; }
log() { echo "bench/podman_pull_run.sh: $*" >&2; }
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer, got '$RUNS'"
[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "--timeout must be a positive integer, got '$TIMEOUT'"
[[ $PREFETCH =~ ^(|none|priority|all)$ ]] || die "--prefetch must be none, priority or all, got '$PREFETCH'"
[ "$(id -u)" = 0 ] || die "needs root (overlayfs, FUSE, drop_caches)"
for p in debootstrap skopeo docker-registry containerd ctr-remote podman runc jq curl bc timeout; do
  command -v "$p" >/dev/null || die "$p is missing (scripts/setup.sh)"
done

# ---------- 1. binaries ----------
if [ -z "$SGSTORE" ]; then
  SGSTORE=$("$ROOT/bench/stargz-store/build.sh") || die "could not build stargz-store"
fi
[ -x "$SGSTORE" ] || die "stargz-store '$SGSTORE' is not executable"
if [ -z "$HSTORE" ] && [ -n "${HOIST_BUILD_DIR:-}" ] && [ -x "$HOIST_BUILD_DIR/tools/hoist-store" ]; then
  HSTORE=$HOIST_BUILD_DIR/tools/hoist-store
fi
[ -n "$HSTORE" ] || HSTORE=$(bench_find_bin hoist-store) || die "no hoist-store binary (--hoist-store PATH)"
[ -x "$HSTORE" ] || die "hoist-store '$HSTORE' is not executable"
HSTORE=$(realpath "$HSTORE")
if [ -z "$HOIST" ] && [ -n "${HOIST_BUILD_DIR:-}" ] && [ -x "$HOIST_BUILD_DIR/tools/hoist" ]; then
  HOIST=$HOIST_BUILD_DIR/tools/hoist
fi
[ -n "$HOIST" ] || HOIST=$(bench_find_bin hoist) || die "no hoist binary for \`hoist convert\` (--hoist PATH)"
[ -x "$HOIST" ] || die "hoist '$HOIST' is not executable"
HOIST=$(realpath "$HOIST")
CASES=(podman stargz-store hoist-estargz hoist-zstdchunked)

# ---------- 2. the images, in a registry kept between runs ----------
LAYOUT=$(bench_python_layout "$CACHE") || die "could not build the python image under $CACHE"
WORK=$(mktemp -d /tmp/hoist-ppr-XXXXXX)
REGDIR=$CACHE/podman_pull_run/registry
mkdir -p "$REGDIR"
CASE_PIDS=()
cleanup() {
  local p
  for p in "${CASE_PIDS[@]}"; do bench_stop_pid "$p"; done
  bench_umount_under "$WORK"
  "$ROOT/tests/harness/registry.sh" stop "$REGDIR" >/dev/null 2>&1 || true
  if [ -n "$OUT" ]; then
    mkdir -p "$OUT"
    cp -r "$WORK"/runs.tsv "$WORK"/logs "$OUT"/ 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/logs"

REG=$("$ROOT/tests/harness/registry.sh" start "$REGDIR") || die "could not start a registry in $REGDIR"
has_tag() {
  curl -sf -o /dev/null -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "http://$REG/v2/bench/py/manifests/$1"
}
if ! has_tag gz; then
  log "pushing the gzip image to $REG"
  skopeo copy -q --insecure-policy --dest-tls-verify=false "oci:$LAYOUT:gz" "docker://$REG/bench/py:gz" \
    || die "skopeo could not push $LAYOUT to $REG"
fi
if ! has_tag estargz; then
  log "converting to eStargz with ctr-remote (once; kept in $REGDIR)"
  bench_start_containerd "$WORK/setup" </dev/null || die "containerd did not start (the line above)"
  CASE_PIDS+=("$CTD_PID")
  C=(ctr-remote -a "$CTD_SOCK" -n bench)
  { "${C[@]}" image pull --plain-http "$REG/bench/py:gz" &&
    "${C[@]}" image convert --estargz --oci "$REG/bench/py:gz" "$REG/bench/py:estargz" &&
    "${C[@]}" image push --plain-http "$REG/bench/py:estargz"; } >"$WORK/logs/setup-estargz.log" 2>&1 \
    || die "eStargz conversion failed: $(tail -c 400 "$WORK/logs/setup-estargz.log")"
  bench_stop_pid "$CTD_PID"
  CASE_PIDS=()
  bench_umount_under "$WORK/setup"
  rm -rf "$WORK/setup"
fi
if ! has_tag zstdchunked; then
  log "converting to zstd:chunked with hoist convert (once; kept in $REGDIR)"
  "$HOIST" convert -q "docker://$REG/bench/py:gz" "docker://$REG/bench/py:zstdchunked" \
    >"$WORK/logs/setup-zstdchunked.log" 2>&1 \
    || die "hoist convert failed: $(tail -c 400 "$WORK/logs/setup-zstdchunked.log")"
fi
manifest_bytes() {  # TAG -> sum of layer sizes
  curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$REG/v2/bench/py/manifests/$1" | jq '[.layers[].size] | add'
}

# ---------- 3. the cases, in rounds ----------
PY=(python3 -c 'import json, sqlite3; print("python3 ok")')
image_of() { case $1 in podman) echo gz ;; stargz-store | hoist-estargz) echo estargz ;; hoist-zstdchunked) echo zstdchunked ;; esac; }
reg_bytes_since() {  # LINE -> bytes the registry sent in access.log lines after LINE
  awk -v n="$1" 'NR > n && $10 ~ /^[0-9]+$/ {s += $10} END {print s + 0}' "$REGDIR/access.log"
}
mounted() { grep -q " $1 " /proc/self/mounts; }

# podman's private configuration in DIR; STORE is the additional layer store's root or empty.
write_podman_config() {  # DIR STORE
  local dir=$1 store=$2
  mkdir -p "$dir/graph" "$dir/run" "$dir/tmp"
  {
    printf '[storage]\ndriver = "overlay"\ngraphroot = "%s/graph"\nrunroot = "%s/run"\n' "$dir" "$dir"
    [ -z "$store" ] || printf '[storage.options]\nadditionallayerstores = ["%s:ref"]\n' "$store"
  } >"$dir/storage.conf"
  printf '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\ntmp_dir = "%s/tmp"\n' \
    "$dir" >"$dir/containers.conf"
  printf '[[registry]]\nlocation = "%s"\ninsecure = true\n' "$REG" >"$dir/registries.conf"
}
podman_in() {  # DIR ARGS...
  local dir=$1
  shift
  env CONTAINERS_STORAGE_CONF="$dir/storage.conf" CONTAINERS_CONF="$dir/containers.conf" \
    CONTAINERS_REGISTRIES_CONF="$dir/registries.conf" podman "$@"
}

# A store daemon in the foreground (background job): KIND (stargz|hoist) DIR; sets ST_PID and
# waits until its mount(s) serve.
start_store() {
  local kind=$1 dir=$2 i
  mkdir -p "$dir/store"
  case $kind in
    stargz) "$SGSTORE" --root "$dir/store-root" "$dir/store" >"$dir/store.log" 2>&1 & ;;
    hoist) "$HSTORE" -f --cache "$dir/store-cache" \
             -o "insecure_registry=$REG,log_level=info${PREFETCH:+,prefetch=$PREFETCH}" \
             "$dir/store" >"$dir/store.log" 2>&1 & ;;
  esac
  ST_PID=$!
  CASE_PIDS+=("$ST_PID")
  for i in $(seq 200); do
    if mounted "$dir/store" && { [ "$kind" = stargz ] || mounted "$dir/store.layers"; }; then return 0; fi
    kill -0 "$ST_PID" 2>/dev/null || break
    sleep 0.1
  done
  die "$kind store did not mount $dir/store: $(tail -c 300 "$dir"/store.* 2>/dev/null)"
}

# One cold run: writes "seconds bytes" to DIR/result. The clock starts before the pull and stops
# when the container's first line of output (python3's) arrives.
run_case() {  # NAME DIR
  local name=$1 dir=$2 store="" ref t0 t1 line mark
  ref=$REG/bench/py:$(image_of "$name")
  mkdir -p "$dir"
  case $name in
    stargz-store) start_store stargz "$dir"; store=$dir/store ;;
    hoist-*) start_store hoist "$dir"; store=$dir/store ;;
  esac
  write_podman_config "$dir" "$store"
  bench_drop_caches
  mark=$(wc -l <"$REGDIR/access.log")
  t0=$(date +%s.%N)
  timeout "$TIMEOUT" env CONTAINERS_STORAGE_CONF="$dir/storage.conf" CONTAINERS_CONF="$dir/containers.conf" \
    CONTAINERS_REGISTRIES_CONF="$dir/registries.conf" podman pull -q "$ref" >"$dir/pull.log" 2>&1 \
    || die "$name: podman pull failed: $(tail -c 400 "$dir/pull.log")"
  line=$( { timeout "$TIMEOUT" env CONTAINERS_STORAGE_CONF="$dir/storage.conf" \
              CONTAINERS_CONF="$dir/containers.conf" CONTAINERS_REGISTRIES_CONF="$dir/registries.conf" \
              podman run --rm --network none --ulimit nofile=20000:20000 --ulimit nproc=1000:1000 \
              "$ref" "${PY[@]}" 2>"$dir/run.err" || echo "exit $?" >>"$dir/run.err"; } |
          { IFS= read -r l; date +%s.%N >"$dir/t1"; echo "$l"; cat >/dev/null; })
  t1=$(cat "$dir/t1")
  [ "$line" = "python3 ok" ] || die "$name: podman run printed '$line', not 'python3 ok': $(tail -c 400 "$dir/run.err")"
  echo "$(echo "$t1 - $t0" | bc) $(reg_bytes_since "$mark")" >"$dir/result"
}
finish_case() {  # DIR: podman's storage first (it stacks the store's layers), then the store
  local dir=$1 log
  podman_in "$dir" system reset -f >"$dir/reset.log" 2>&1 || true
  [ -z "${ST_PID:-}" ] || bench_stop_pid "$ST_PID"
  bench_umount_under "$dir"
  CASE_PIDS=()
  ST_PID=
  for log in store.log pull.log run.err; do
    [ -f "$dir/$log" ] && cp "$dir/$log" "$WORK/logs/$(basename "$dir")-$log"
  done
  rm -rf "$dir"
}

ST_PID=
bench_rounds "$WORK/runs.tsv" "$RUNS" "${CASES[@]}"

# ---------- 4. the report ----------
col() { bench_rounds_median "$WORK/runs.tsv" "$1" "$2"; }  # CASE FIELD -> median over the rounds
label() { case $1 in
  podman) echo "podman pull + run, gzip image (baseline)" ;;
  stargz-store) echo "stargz-store: podman pull + run, eStargz image" ;;
  hoist-estargz) echo "hoist-store: podman pull + run, eStargz image" ;;
  hoist-zstdchunked) echo "hoist-store: podman pull + run, hoist convert zstd:chunked image" ;;
esac; }
BASE=$(col podman seconds)
LOADS=$(awk -F'\t' 'NR > 1 {print $3}' "$WORK/runs.tsv" | sort -g | awk '{a[NR] = $1} END {print a[1] "-" a[NR]}')
printf '### %s runs, %s\n\n' "$RUNS" "$(date -u +%Y-%m-%dT%H:%MZ)"
printf 'Machine: %s cores, %s; load average (1 min) before the runs: %s. podman %s, runc %s.\n' \
  "$(nproc)" "$(awk '/MemTotal/ {printf "%d GB RAM", $2 / 1000000}' /proc/meminfo)" "$LOADS" \
  "$(podman --version | awk '{print $3}')" "$(runc --version | awk 'NR == 1 {print $3}')"
printf 'stargz-store: %s (stargz-snapshotter %s). hoist-store: %s, prefetch %s. hoist: %s. Repo at %s.\n\n' \
  "$SGSTORE" "$(dpkg-query -W -f='${Version}' golang-github-containerd-stargz-snapshotter-dev 2>/dev/null)" \
  "$HSTORE" "${PREFETCH:-default}" "$HOIST" "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
# "lazy" when the registry sent less than half the image's layer bytes during the timed commands.
printf '| case | median pull-to-output (s) | podman / case | registry bytes (median) | image layers (bytes) | lazy |\n'
printf '|---|---|---|---|---|---|\n'
for name in "${CASES[@]}"; do
  med=$(col "$name" seconds)
  got=$(col "$name" registry_bytes | awk '{printf "%.0f", $1}')
  img=$(manifest_bytes "$(image_of "$name")")
  lazy=no; [ "$name" = podman ] && lazy="-"; [ $((got * 2)) -lt "$img" ] && lazy=yes
  printf '| %s | %.2f | %.2f | %s | %s | %s |\n' "$(label "$name")" "$med" "$(echo "scale=4; $BASE / $med" | bc)" \
    "$got" "$img" "$lazy"
done
printf '\nPer run (s): '
for name in "${CASES[@]}"; do
  printf '%s %s; ' "$name" "$(awk -F'\t' -v n="$name" '$2 == n {printf "%s%.2f", sep, $4; sep = ", "}' "$WORK/runs.tsv")"
done
printf '\n'
