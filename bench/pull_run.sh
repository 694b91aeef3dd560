#!/usr/bin/env bash
# bench/pull_run.sh: cold pull-and-run of the python image through containerd (issue 13), from the
# start of the pull to python3's first line of output, median of N runs per case:
#
#   overlayfs   containerd's own path: `ctr image pull` + `ctr run` of the gzip image (baseline)
#   stargz      containerd-stargz-grpc (bench/stargz/build.sh) with the eStargz image:
#               `ctr-remote image rpull --snapshotter stargz` + `ctr run --snapshotter stargz`
#   hoist-estargz      hoist-snapshotter, the same eStargz image, rpull + run
#   hoist-zstdchunked  hoist-snapshotter, the image made by `hoist convert` (zstd:chunked)
#   hoist-zstdchunked-pl  the same, converted with `--prefetch-list bench/python_start.list`
#               (the files python3's start reads, marked and first in their layer)
#   base-estargz, base-zstdchunked  the same with --base-snapshotter PATH (another build, e.g.
#               of the previous revision), to compare two revisions in one run
#
# The hoist cases run only when a hoist-snapshotter binary is found (--snapshotter PATH, else
# $HOIST_BUILD_DIR/tools or the repo's build dirs) and, for zstd:chunked, a hoist binary.
#
# Usage (root: containerd, overlayfs, FUSE, drop_caches):
#   bench/pull_run.sh [--runs N] [--snapshotter PATH] [--hoist PATH] [--stargz PATH]
#                     [--base-snapshotter PATH] [--timeout S] [--out DIR]
#
# Every run of every case starts from nothing: a new containerd (own root, state, socket and
# config, CRI disabled), a new snapshotter daemon with an empty root and cache, and the page cache
# dropped. Only the registry is kept: it lives under $HOIST_BENCH_CACHE/pull_run/registry
# (default /var/cache/hoist-bench) and keeps the pushed and converted images between runs of the
# script (tags bench/py:gz, :estargz, :zstdchunked; made again when missing). The cases are
# rotated from round to round. Bytes are what the registry's access log says it sent during the
# timed command (lazy snapshotters keep fetching in the background afterwards; that is not
# counted). There is no delaying proxy in bench/, so the registry is on loopback only.
#
# Prints markdown on stdout; progress on stderr. --out DIR keeps the per-run TSV and the logs.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
CACHE=${HOIST_BENCH_CACHE:-/var/cache/hoist-bench}
RUNS=5
SNAP=
HOIST=${HOIST:-}
STARGZ=
BASE_SNAP=
TIMEOUT=600
OUT=
usage() {
  echo "usage: $0 [--runs N] [--snapshotter PATH] [--hoist PATH] [--stargz PATH] [--base-snapshotter PATH] [--timeout S] [--out DIR]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) [ $# -ge 2 ] || usage; RUNS=$2; shift 2 ;;
    --snapshotter) [ $# -ge 2 ] || usage; SNAP=$2; shift 2 ;;
    --hoist) [ $# -ge 2 ] || usage; HOIST=$2; shift 2 ;;
    --stargz) [ $# -ge 2 ] || usage; STARGZ=$2; shift 2 ;;
    --base-snapshotter) [ $# -ge 2 ] || usage; BASE_SNAP=$(realpath "$2"); shift 2 ;;
    --timeout) [ $# -ge 2 ] || usage; TIMEOUT=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || usage; OUT=$2; shift 2 ;;
    *) usage ;;
  esac
done
die() { echo "bench/pull_run.sh: $*" >&2; exit 1; }
log() { echo "bench/pull_run.sh: $*" >&2; }
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer, got '$RUNS'"
[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "--timeout must be a positive integer, got '$TIMEOUT'"
[ "$(id -u)" = 0 ] || die "needs root (containerd, overlayfs, FUSE, drop_caches)"
for p in debootstrap skopeo docker-registry containerd ctr ctr-remote runc jq curl bc timeout; do
  command -v "$p" >/dev/null || die "$p is missing (scripts/setup.sh)"
done

# ---------- 1. binaries ----------
if [ -z "$STARGZ" ]; then
  STARGZ=$("$ROOT/bench/stargz/build.sh") || die "could not build containerd-stargz-grpc"
fi
[ -x "$STARGZ" ] || die "containerd-stargz-grpc '$STARGZ' is not executable"
if [ -z "$SNAP" ] && [ -n "${HOIST_BUILD_DIR:-}" ] && [ -x "$HOIST_BUILD_DIR/tools/hoist-snapshotter" ]; then
  SNAP=$HOIST_BUILD_DIR/tools/hoist-snapshotter
fi
[ -n "$SNAP" ] || SNAP=$(bench_find_bin hoist-snapshotter) || SNAP=
if [ -n "$SNAP" ]; then
  [ -x "$SNAP" ] || die "hoist-snapshotter '$SNAP' is not executable"
  SNAP=$(realpath "$SNAP")
fi
if [ -z "$HOIST" ] && [ -n "${HOIST_BUILD_DIR:-}" ] && [ -x "$HOIST_BUILD_DIR/tools/hoist" ]; then
  HOIST=$HOIST_BUILD_DIR/tools/hoist
fi
[ -n "$HOIST" ] || HOIST=$(bench_find_bin hoist) || HOIST=
[ -z "$HOIST" ] || { [ -x "$HOIST" ] || die "hoist '$HOIST' is not executable"; HOIST=$(realpath "$HOIST"); }

CASES=(overlayfs stargz)
SKIPPED=()
if [ -n "$SNAP" ]; then
  CASES+=(hoist-estargz)
  if [ -n "$HOIST" ]; then CASES+=(hoist-zstdchunked hoist-zstdchunked-pl); else SKIPPED+=("hoist-zstdchunked: no hoist binary for \`hoist convert\`"); fi
else
  SKIPPED+=("hoist-estargz, hoist-zstdchunked: no hoist-snapshotter binary (--snapshotter PATH)")
fi
if [ -n "$BASE_SNAP" ]; then
  [ -x "$BASE_SNAP" ] || die "--base-snapshotter '$BASE_SNAP' is not executable"
  CASES+=(base-estargz)
  [ -z "$HOIST" ] || CASES+=(base-zstdchunked)
fi

# ---------- 2. the images, in a registry kept between runs ----------
LAYOUT=$(bench_python_layout "$CACHE") || die "could not build the python image under $CACHE"
WORK=$(mktemp -d /tmp/hoist-pr-XXXXXX)  # short: unix socket paths live under it
REGDIR=$CACHE/pull_run/registry
mkdir -p "$REGDIR"
CASE_PIDS=()
stop_pid() { bench_stop_pid "$@"; }
umount_under() { bench_umount_under "$@"; }
cleanup() {
  local p
  for p in "${CASE_PIDS[@]}"; do stop_pid "$p"; done
  umount_under "$WORK"
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

# A containerd of our own in DIR (bench/lib.sh); extra config on stdin. Sets CTD_PID and CTD_SOCK.
start_containerd() {  # DIR
  local ok=0
  bench_start_containerd "$1" || ok=1
  CASE_PIDS+=("$CTD_PID")
  [ "$ok" = 0 ] || die "containerd did not start (the line above)"
}

# A snapshotter daemon: NAME (stargz|hoist) DIR; sets SN_PID, SN_SOCK.
start_snapshotter() {
  local bin=$STARGZ
  [ "$1" = hoist ] && bin=$SNAP
  [ "${3:-}" = base ] && bin=$BASE_SNAP
  local ok=0
  bench_start_snapshotter "$1" "$bin" "$2" || ok=1
  CASE_PIDS+=("$SN_PID")
  [ "$ok" = 0 ] || die "the $1 snapshotter did not start (the line above)"
}

if ! has_tag gz; then
  log "pushing the gzip image to $REG"
  skopeo copy -q --insecure-policy --dest-tls-verify=false "oci:$LAYOUT:gz" "docker://$REG/bench/py:gz" \
    || die "skopeo could not push $LAYOUT to $REG"
fi
if ! has_tag estargz; then
  log "converting to eStargz with ctr-remote (once; kept in $REGDIR)"
  start_containerd "$WORK/setup" </dev/null
  C=(ctr-remote -a "$CTD_SOCK" -n bench)
  { "${C[@]}" image pull --plain-http "$REG/bench/py:gz" &&
    "${C[@]}" image convert --estargz --oci "$REG/bench/py:gz" "$REG/bench/py:estargz" &&
    "${C[@]}" image push --plain-http "$REG/bench/py:estargz"; } >"$WORK/logs/setup-estargz.log" 2>&1 \
    || die "eStargz conversion failed: $(tail -c 400 "$WORK/logs/setup-estargz.log")"
  stop_pid "$CTD_PID"
  CASE_PIDS=()
  umount_under "$WORK/setup"
  rm -rf "$WORK/setup"
fi
if [[ " ${CASES[*]} " == *"-zstdchunked "* ]] && ! has_tag zstdchunked; then
  log "converting to zstd:chunked with hoist convert (once; kept in $REGDIR)"
  "$HOIST" convert -q "docker://$REG/bench/py:gz" "docker://$REG/bench/py:zstdchunked" \
    >"$WORK/logs/setup-zstdchunked.log" 2>&1 \
    || die "hoist convert failed: $(tail -c 400 "$WORK/logs/setup-zstdchunked.log")"
fi
if [[ " ${CASES[*]} " == *" hoist-zstdchunked-pl "* ]] && ! has_tag zstdchunked-pl; then
  log "converting to zstd:chunked with a prefetch list (once; kept in $REGDIR)"
  "$HOIST" convert -q --prefetch-list "$ROOT/bench/python_start.list" "docker://$REG/bench/py:gz" \
    "docker://$REG/bench/py:zstdchunked-pl" >"$WORK/logs/setup-zstdchunked-pl.log" 2>&1 \
    || die "hoist convert --prefetch-list failed: $(tail -c 400 "$WORK/logs/setup-zstdchunked-pl.log")"
fi
manifest_bytes() {  # TAG -> sum of layer sizes
  curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
    "http://$REG/v2/bench/py/manifests/$1" | jq '[.layers[].size] | add'
}

# ---------- 3. the cases, in rounds ----------
PY=(python3 -c 'import json, sqlite3; print("python3 ok")')
image_of() { case $1 in overlayfs) echo gz ;; stargz | *-estargz) echo estargz ;; *-zstdchunked) echo zstdchunked ;; *-zstdchunked-pl) echo zstdchunked-pl ;; esac; }
reg_bytes_since() {  # LINE -> bytes the registry sent in access.log lines after LINE
  awk -v n="$1" 'NR > n && $10 ~ /^[0-9]+$/ {s += $10} END {print s + 0}' "$REGDIR/access.log"
}

# One cold run: writes "seconds bytes" to DIR/result. The clock starts before the pull and stops when the
# container's first line of output (python3's) arrives.
run_case() {  # NAME DIR
  local name=$1 dir=$2 sn ref extra="" t0 t1 line mark
  ref=$REG/bench/py:$(image_of "$name")
  case $name in
    overlayfs) sn= ;;
    stargz) sn=stargz ;;
    hoist-* | base-*) sn=hoist ;;
  esac
  mkdir -p "$dir"
  if [ -n "$sn" ]; then
    start_snapshotter "$sn" "$dir" "${name%%-*}"
    extra=$(bench_proxy_plugin "$sn" "$SN_SOCK")
  fi
  start_containerd "$dir" <<<"$extra"
  bench_drop_caches
  mark=$(wc -l <"$REGDIR/access.log")
  local C=(ctr -a "$CTD_SOCK" -n bench) R=(ctr-remote -a "$CTD_SOCK" -n bench)
  t0=$(date +%s.%N)
  if [ -z "$sn" ]; then
    timeout "$TIMEOUT" "${C[@]}" image pull --plain-http "$ref" >"$dir/pull.log" 2>&1 \
      || die "$name: ctr image pull failed: $(tail -c 400 "$dir/pull.log")"
  else
    timeout "$TIMEOUT" "${R[@]}" image rpull --plain-http --snapshotter "$sn" "$ref" >"$dir/pull.log" 2>&1 \
      || die "$name: ctr-remote image rpull failed: $(tail -c 400 "$dir/pull.log")"
  fi
  line=$( { timeout "$TIMEOUT" "${C[@]}" run --rm ${sn:+--snapshotter "$sn"} "$ref" "pr-$name" "${PY[@]}" \
            2>"$dir/run.err" || echo "exit $?" >>"$dir/run.err"; } |
          { IFS= read -r l; date +%s.%N >"$dir/t1"; echo "$l"; cat >/dev/null; })
  t1=$(cat "$dir/t1")
  [ "$line" = "python3 ok" ] || die "$name: ctr run printed '$line', not 'python3 ok': $(tail -c 400 "$dir/run.err")"
  echo "$(echo "$t1 - $t0" | bc) $(reg_bytes_since "$mark")" >"$dir/result"
}
finish_case() {  # DIR: snapshotter first (it unmounts its layers), then containerd, then leftovers
  local dir=$1 log
  [ -z "${SN_PID:-}" ] || stop_pid "$SN_PID"
  stop_pid "$CTD_PID"
  umount_under "$dir"
  CASE_PIDS=()
  SN_PID=
  for log in containerd.log snapshotter.log pull.log run.err; do
    [ -f "$dir/$log" ] && cp "$dir/$log" "$WORK/logs/$(basename "$dir")-$log"
  done
  rm -rf "$dir"
}

SN_PID=
bench_rounds "$WORK/runs.tsv" "$RUNS" "${CASES[@]}"

# ---------- 4. the report ----------
col() { bench_rounds_median "$WORK/runs.tsv" "$1" "$2"; }  # CASE FIELD -> median over the rounds
label() { case $1 in
  overlayfs) echo "containerd overlayfs: ctr image pull + ctr run, gzip image (baseline)" ;;
  stargz) echo "containerd-stargz-grpc: ctr-remote image rpull + ctr run, eStargz image" ;;
  hoist-estargz) echo "hoist-snapshotter: ctr-remote image rpull + ctr run, eStargz image" ;;
  hoist-zstdchunked) echo "hoist-snapshotter: ctr-remote image rpull + ctr run, hoist convert zstd:chunked image" ;;
  hoist-zstdchunked-pl) echo "hoist-snapshotter: ctr-remote image rpull + ctr run, hoist convert --prefetch-list zstd:chunked image" ;;
  base-estargz) echo "base hoist-snapshotter (--base-snapshotter): eStargz image" ;;
  base-zstdchunked) echo "base hoist-snapshotter (--base-snapshotter): hoist convert zstd:chunked image" ;;
esac; }
BASE=$(col overlayfs seconds)
LOADS=$(awk -F'\t' 'NR > 1 {print $3}' "$WORK/runs.tsv" | sort -g | awk '{a[NR] = $1} END {print a[1] "-" a[NR]}')
printf '### %s runs, %s\n\n' "$RUNS" "$(date -u +%Y-%m-%dT%H:%MZ)"
printf 'Machine: %s cores, %s; load average (1 min) before the runs: %s. containerd %s, ctr-remote from %s.\n' \
  "$(nproc)" "$(awk '/MemTotal/ {printf "%d GB RAM", $2 / 1000000}' /proc/meminfo)" "$LOADS" \
  "$(containerd --version | awk '{print $3}')" "stargz-snapshotter $(dpkg-query -W -f='${Version}' stargz-snapshotter 2>/dev/null)"
printf 'containerd-stargz-grpc: %s. hoist-snapshotter: %s. base hoist-snapshotter: %s. hoist: %s. Repo at %s.\n\n' \
  "$STARGZ" "${SNAP:-not found}" "${BASE_SNAP:-none}" "${HOIST:-not found}" "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
# "lazy" when the registry sent less than half the image's layer bytes during the timed command;
# a snapshotter that fell back to containerd's ordinary unpack shows every byte fetched.
printf '| case | median pull-to-output (s) | overlayfs / case | registry bytes (median) | image layers (bytes) | lazy |\n'
printf '|---|---|---|---|---|---|\n'
for name in "${CASES[@]}"; do
  med=$(col "$name" seconds)
  got=$(col "$name" registry_bytes | awk '{printf "%.0f", $1}')
  img=$(manifest_bytes "$(image_of "$name")")
  lazy=no; [ "$name" = overlayfs ] && lazy="-"; [ $((got * 2)) -lt "$img" ] && lazy=yes
  printf '| %s | %.2f | %.2f | %s | %s | %s |\n' "$(label "$name")" "$med" "$(echo "scale=4; $BASE / $med" | bc)" \
    "$got" "$img" "$lazy"
done
printf '\nPer run (s): '
for name in "${CASES[@]}"; do
  printf '%s %s; ' "$name" "$(awk -F'\t' -v n="$name" '$2 == n {printf "%s%.2f", sep, $4; sep = ", "}' "$WORK/runs.tsv")"
done
printf '\n'
for s in "${SKIPPED[@]}"; do printf '\nNot measured: %s.\n' "$s"; done
