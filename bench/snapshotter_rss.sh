#!/usr/bin/env bash
# bench/snapshotter_rss.sh: hoist-snapshotter with many images (issue 13's other two numbers):
#
#   rss       the daemon's VmRSS and VmHWM (/proc/PID/status) with IMAGES x LAYERS lazy layers
#             mounted (default 20 images of 5 layers: 100 layers), right after the pulls, after
#             `find` walked every layer's tree and after every file of every layer was read
#   prepare   the time of Prepare of a cached layer: after `ctr image rm --sync` of every image
#             (containerd's GC removes all the snapshots; the hoist cache keeps the layer
#             indexes), `ctr-remote image rpull` of all images again, divided by the layer count
#
# Usage (root: containerd, FUSE):
#   bench/snapshotter_rss.sh [--runs N] [--prepare-runs N] [--images N] [--layers N]
#                            [--prefetch none|priority|all] [--snapshotter PATH] [--hoist PATH]
#                            [--out DIR]
#
# Images: IMAGES distinct images of LAYERS distinct layers each (every layer: 20 files of
# 1-4 KiB of random bytes in a directory of its own, an opaque directory and, above the first
# layer, a whiteout of a file of the layer below), written as OCI layouts with uncompressed
# layers (bench/lib.sh) and converted to zstd:chunked by `hoist convert` straight into a registry
# of the run's own on 127.0.0.1. Each of --runs rounds starts a new hoist-snapshotter (its
# default prefetch, or --prefetch MODE) and a new containerd 1.6 with it as `[proxy_plugins.hoist]` (bench/lib.sh, as
# bench/pull_run.sh), pulls every image with `ctr-remote image rpull --plain-http --snapshotter
# hoist`, and checks that every layer is a remote snapshot (label containerd.io/snapshot/remote,
# and one "mounted lazily" log line per layer) and that the registry sent no layer blob whole.
# Then --prepare-runs times of: remove all images (+ GC), check that no hoist snapshot is left,
# rpull all images (timed: "cached"; the registry's access log must show no layer blob read),
# rpull all images again while they are present (timed: "present", every snapshot exists, so
# no Prepare). Per layer: cached / layers (an upper bound: it holds containerd's resolve, the
# manifest and config fetch, the Stat after each Prepare and one ctr-remote process per
# image) and (cached - present) / layers (the part the removal made: Prepare and Commit of the
# remote snapshot plus the manifest and config fetch again).
#
# Prints markdown on stdout; progress on stderr. --out DIR keeps the per-run TSV and the logs.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

RUNS=3
PREPARE_RUNS=5
IMAGES=20
LAYERS=5
SNAP=
HOIST=${HOIST:-}
OUT=
PREFETCH=
usage() {
  echo "usage: $0 [--runs N] [--prepare-runs N] [--images N] [--layers N] [--prefetch MODE] [--snapshotter PATH] [--hoist PATH] [--out DIR]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) [ $# -ge 2 ] || usage; RUNS=$2; shift 2 ;;
    --prepare-runs) [ $# -ge 2 ] || usage; PREPARE_RUNS=$2; shift 2 ;;
    --images) [ $# -ge 2 ] || usage; IMAGES=$2; shift 2 ;;
    --layers) [ $# -ge 2 ] || usage; LAYERS=$2; shift 2 ;;
    --prefetch) [ $# -ge 2 ] || usage; PREFETCH=$2; shift 2 ;;
    --snapshotter) [ $# -ge 2 ] || usage; SNAP=$2; shift 2 ;;
    --hoist) [ $# -ge 2 ] || usage; HOIST=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || usage; OUT=$2; shift 2 ;;
    *) usage ;;
  esac
done
die() { echo "bench/snapshotter_rss.sh: $*" >&2; exit 1; }
log() { echo "bench/snapshotter_rss.sh: $*" >&2; }
for v in RUNS PREPARE_RUNS IMAGES LAYERS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "--$(echo "$v" | tr 'A-Z_' 'a-z-') must be a positive integer, got '${!v}'"
done
[ "$(id -u)" = 0 ] || die "needs root (containerd, FUSE)"
for p in docker-registry containerd ctr ctr-remote jq curl bc; do
  command -v "$p" >/dev/null || die "$p is missing (scripts/setup.sh)"
done
if [ -z "$SNAP" ] && [ -n "${HOIST_BUILD_DIR:-}" ] && [ -x "$HOIST_BUILD_DIR/tools/hoist-snapshotter" ]; then
  SNAP=$HOIST_BUILD_DIR/tools/hoist-snapshotter
fi
[ -n "$SNAP" ] || SNAP=$(bench_find_bin hoist-snapshotter) || die "no hoist-snapshotter built (--snapshotter PATH)"
[ -x "$SNAP" ] || die "hoist-snapshotter '$SNAP' is not executable"
SNAP=$(realpath "$SNAP")
if [ -z "$HOIST" ] && [ -n "${HOIST_BUILD_DIR:-}" ] && [ -x "$HOIST_BUILD_DIR/tools/hoist" ]; then
  HOIST=$HOIST_BUILD_DIR/tools/hoist
fi
[ -n "$HOIST" ] || HOIST=$(bench_find_bin hoist) || die "no hoist built (--hoist PATH)"
[ -x "$HOIST" ] || die "hoist '$HOIST' is not executable"
HOIST=$(realpath "$HOIST")
NLAYERS=$((IMAGES * LAYERS))

WORK=$(mktemp -d /tmp/hoist-rss-XXXXXX)  # short: unix socket paths live under it
REGDIR=$WORK/registry
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do bench_stop_pid "$p"; done
  bench_umount_under "$WORK"
  "$ROOT/tests/harness/registry.sh" stop "$REGDIR" >/dev/null 2>&1 || true
  if [ -n "$OUT" ]; then
    mkdir -p "$OUT"
    cp -r "$WORK"/runs.tsv "$WORK"/prepare.tsv "$WORK"/logs "$OUT"/ 2>/dev/null || true
    for p in "$WORK"/r*/*.log; do [ -f "$p" ] && cp "$p" "$OUT/logs/$(basename "$(dirname "$p")")-$(basename "$p")"; done
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/logs"
REG=$("$ROOT/tests/harness/registry.sh" start "$REGDIR") || die "could not start a registry in $REGDIR"

# ---------- 1. the images ----------
ref_of() { echo "$REG/snap/i$1:z"; }
t0=$(date +%s.%N)
for i in $(seq "$IMAGES"); do
  dirs=()
  for l in $(seq "$LAYERS"); do
    d=$WORK/src/i$i/l$l
    mkdir -p "$d/i$i-l$l/opq"
    for f in $(seq 20); do head -c $((1024 + (i * 131 + l * 37 + f * 101) % 3072)) /dev/urandom >"$d/i$i-l$l/f$f"; done
    echo "$i $l" >"$d/i$i-l$l/opq/only"
    : >"$d/i$i-l$l/opq/.wh..wh..opq"
    if [ "$l" -gt 1 ]; then mkdir -p "$d/i$i-l$((l - 1))" && : >"$d/i$i-l$((l - 1))/.wh.f1"; fi
    dirs+=("$d")
  done
  bench_layout_from_dirs "$WORK/layout/i$i" src none "${dirs[@]}"
  "$HOIST" convert -q "oci:$WORK/layout/i$i:src" "docker://$(ref_of "$i")" >"$WORK/logs/convert-i$i.log" 2>&1 \
    || die "hoist convert of image $i failed: $(tail -c 400 "$WORK/logs/convert-i$i.log")"
done
rm -rf "$WORK/src" "$WORK/layout"
log "$IMAGES images of $LAYERS layers made and pushed in $(echo "$(date +%s.%N) - $t0" | bc | cut -c1-5) s"
LAYER_DIGESTS=$WORK/layer-digests
for i in $(seq "$IMAGES"); do
  curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$(ref_of "$i" | sed 's|/snap/|/v2/snap/|; s|:z$|/manifests/z|')" \
    | jq -r '.layers[] | select(.mediaType | test("zstd")) | .digest'
done | sort -u >"$LAYER_DIGESTS"
[ "$(wc -l <"$LAYER_DIGESTS")" = "$NLAYERS" ] || die "expected $NLAYERS distinct zstd layers, the manifests have $(wc -l <"$LAYER_DIGESTS")"

# Registry requests after access.log line MARK that read a layer blob: "whole" (GET of the blob,
# any length the registry sent >= the blob's size) and "any" (every GET of a layer blob).
blob_gets_since() {  # MARK -> "any whole"
  awk -v n="$1" 'NR > n && $6 == "\"GET" {print $7, $10}' "$REGDIR/access.log" | while read -r path bytes; do
    dg=${path##*/}
    grep -qx "$dg" "$LAYER_DIGESTS" || continue
    size=$(stat -c %s "$REGDIR/storage/docker/registry/v2/blobs/sha256/${dg:7:2}/${dg#sha256:}/data")
    echo "$bytes $size"
  done | awk '{n++; if ($1 >= $2) w++} END {print n + 0, w + 0}'
}

# ---------- 2. the rounds ----------
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
C=()
R=()
pull_all() {  # LOG -> total seconds on stdout
  local t0 t1 i
  t0=$(date +%s.%N)
  for i in $(seq "$IMAGES"); do
    "${R[@]}" image rpull --plain-http --snapshotter hoist "$(ref_of "$i")" >>"$1" 2>&1 \
      || die "rpull of $(ref_of "$i") failed: $(tail -c 400 "$1")"
  done
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}
committed_snapshots() { "${C[@]}" snapshots --snapshotter hoist ls | awk 'NR > 1 && $NF == "Committed" {print $1}'; }
check_remote() {  # DIR: every one of the NLAYERS committed snapshots is remote
  local keys n remote=0 k lazy
  keys=$(committed_snapshots)
  n=$(echo "$keys" | grep -c . || true)
  [ "$n" = "$NLAYERS" ] || die "expected $NLAYERS committed hoist snapshots, found $n"
  for k in $keys; do
    if "${C[@]}" snapshots --snapshotter hoist info "$k" | jq -e '.Labels["containerd.io/snapshot/remote"]' >/dev/null; then
      remote=$((remote + 1))
    fi
  done
  [ "$remote" = "$NLAYERS" ] || die "only $remote of $NLAYERS snapshots carry containerd.io/snapshot/remote"
  lazy=$(grep -c 'mounted lazily' "$1/snapshotter.log" || true)
  [ "$lazy" -ge "$NLAYERS" ] || die "the snapshotter logged $lazy 'mounted lazily' lines, expected $NLAYERS"
}

printf 'round\tload1\tcold_pull_s\trss_start_kb\trss_kb\thwm_kb\trss_find_kb\trss_read_kb\trss_end_kb\thwm_end_kb\tthreads\tanon_kb\tfile_kb\tanon_read_kb\tfile_read_kb\n' >"$WORK/runs.tsv"
printf 'round\trep\tload1\tcached_s\tpresent_s\n' >"$WORK/prepare.tsv"
for round in $(seq "$RUNS"); do
  dir=$WORK/r$round
  load0=$(cut -d' ' -f1 /proc/loadavg)
  log "round $round/$RUNS (load $load0)"
  bench_start_snapshotter hoist "$SNAP" "$dir" --log-level info ${PREFETCH:+--prefetch "$PREFETCH"} \
    || die "hoist-snapshotter did not start"
  PIDS+=("$SN_PID")
  bench_start_containerd "$dir" <<<"$(bench_proxy_plugin hoist "$SN_SOCK")" || { PIDS+=("$CTD_PID"); die "containerd did not start"; }
  PIDS+=("$CTD_PID")
  C=(ctr -a "$CTD_SOCK" -n bench)
  R=(ctr-remote -a "$CTD_SOCK" -n bench)
  rss0=$(status_kb "$SN_PID" VmRSS)
  mark=$(wc -l <"$REGDIR/access.log")
  cold=$(pull_all "$dir/pull.log")
  check_remote "$dir"
  read -r anyb wholeb < <(blob_gets_since "$mark")
  [ "$wholeb" = 0 ] || die "the registry sent $wholeb layer blobs whole during the pulls"
  rss=$(status_kb "$SN_PID" VmRSS)
  hwm=$(status_kb "$SN_PID" VmHWM)
  anon=$(status_kb "$SN_PID" RssAnon)
  file=$(status_kb "$SN_PID" RssFile)
  layers_dir=$dir/sn-root/layers
  nd=$(find "$layers_dir" -mindepth 1 -maxdepth 1 | wc -l)
  [ "$nd" -ge "$NLAYERS" ] || die "the layer store shows $nd layer directories, expected $NLAYERS"
  find "$layers_dir" >/dev/null
  rssf=$(status_kb "$SN_PID" VmRSS)
  find "$layers_dir" -type f -exec cat {} + >/dev/null
  rssr=$(status_kb "$SN_PID" VmRSS)
  anonr=$(status_kb "$SN_PID" RssAnon)
  filer=$(status_kb "$SN_PID" RssFile)
  threads=$(status_kb "$SN_PID" Threads)
  log "  cold pull of $IMAGES images $(printf %.2f "$cold") s ($anyb layer-blob reads, none whole); VmRSS $rss kB, VmHWM $hwm kB; after find $rssf kB, after reading all $rssr kB"

  refs=()
  for i in $(seq "$IMAGES"); do refs+=("$(ref_of "$i")"); done
  for rep in $(seq "$PREPARE_RUNS"); do
    "${C[@]}" image rm --sync "${refs[@]}" >/dev/null 2>>"$dir/rm.log" || die "ctr image rm failed: $(tail -c 300 "$dir/rm.log")"
    left=$(committed_snapshots | grep -c . || true)
    [ "$left" = 0 ] || die "$left hoist snapshots left after ctr image rm --sync"
    load=$(cut -d' ' -f1 /proc/loadavg)
    mark=$(wc -l <"$REGDIR/access.log")
    cached=$(pull_all "$dir/pull-cached.log")
    read -r anyb _ < <(blob_gets_since "$mark")
    [ "$anyb" = 0 ] || die "the registry served $anyb layer-blob reads during the cached pull (index not cached?)"
    [ "$(committed_snapshots | grep -c .)" = "$NLAYERS" ] || die "the cached pull did not make $NLAYERS snapshots"
    present=$(pull_all "$dir/pull-present.log")
    log "  rep $rep: cached rpull of $IMAGES images $cached s, present $present s (load $load)"
    printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$rep" "$load" "$cached" "$present" >>"$WORK/prepare.tsv"
  done
  check_remote "$dir"
  rsse=$(status_kb "$SN_PID" VmRSS)
  hwme=$(status_kb "$SN_PID" VmHWM)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$load0" "$cold" "$rss0" "$rss" "$hwm" \
    "$rssf" "$rssr" "$rsse" "$hwme" "$threads" "$anon" "$file" "$anonr" "$filer" >>"$WORK/runs.tsv"
  bench_stop_pid "$CTD_PID"
  bench_stop_pid "$SN_PID"
  PIDS=()
  bench_umount_under "$dir"
  for f in "$dir"/*.log; do cp "$f" "$WORK/logs/r$round-$(basename "$f")"; done
  rm -rf "$dir"
done

# ---------- 3. the report ----------
col() {  # FILE FIELD -> median
  # shellcheck disable=SC2046
  bench_median_list $(awk -F'\t' -v c="$2" 'NR == 1 {for (i = 1; i <= NF; i++) if ($i == c) k = i; next} {print $k}' "$1")
}
mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
ms_per_layer() { echo "scale=2; $1 * 1000 / $NLAYERS" | bc; }
loads() { awk -F'\t' -v c="$2" 'NR == 1 {for (i = 1; i <= NF; i++) if ($i == c) k = i; next} {print $k}' "$1" | sort -g | awk '{a[NR] = $1} END {print a[1] "-" a[NR]}'; }
printf '### %s images x %s layers, %s rounds, prefetch %s, %s\n\n' "$IMAGES" "$LAYERS" "$RUNS" \
  "${PREFETCH:-default}" "$(date -u +%Y-%m-%dT%H:%MZ)"
printf 'Machine: %s cores, %s; load average (1 min) before each round: %s, before each cached pull: %s. containerd %s. hoist-snapshotter: %s. Repo at %s.\n\n' \
  "$(nproc)" "$(awk '/MemTotal/ {printf "%d GB RAM", $2 / 1000000}' /proc/meminfo)" "$(loads "$WORK/runs.tsv" load1)" \
  "$(loads "$WORK/prepare.tsv" load1)" "$(containerd --version | awk '{print $3}')" "$SNAP" \
  "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
printf '| hoist-snapshotter, %s lazy layers of %s images | median (MB) | per run (MB) |\n|---|---|---|\n' "$NLAYERS" "$IMAGES"
for f in rss_start_kb:"VmRSS at start, no layer" rss_kb:"VmRSS after the pulls" \
         anon_kb:"  of which RssAnon" file_kb:"  of which RssFile (mapped files: LMDB, binary)" hwm_kb:"VmHWM after the pulls" rss_find_kb:"VmRSS after find over every layer" \
         rss_read_kb:"VmRSS after reading every file" anon_read_kb:"  of which RssAnon" \
         file_read_kb:"  of which RssFile" \
         rss_end_kb:"VmRSS after the cached-Prepare runs (all layers removed and served again)" \
         hwm_end_kb:"VmHWM at the end"; do
  printf '| %s | %s | %s |\n' "${f#*:}" "$(mb "$(col "$WORK/runs.tsv" "${f%%:*}")")" \
    "$(awk -F'\t' -v c="${f%%:*}" 'NR == 1 {for (i = 1; i <= NF; i++) if ($i == c) k = i; next} {printf "%s%.1f", s, $k / 1024; s = ", "}' "$WORK/runs.tsv")"
done
printf '\nThreads of the daemon with the layers mounted: %s. Cold rpull of all %s images (TOCs fetched), median: %.2f s.\n\n' \
  "$(col "$WORK/runs.tsv" threads)" "$IMAGES" "$(col "$WORK/runs.tsv" cold_pull_s)"
C_MED=$(col "$WORK/prepare.tsv" cached_s)
P_MED=$(col "$WORK/prepare.tsv" present_s)
DIFFS=$(awk -F'\t' 'NR > 1 {print $4 - $5}' "$WORK/prepare.tsv")
# shellcheck disable=SC2086
D_MED=$(bench_median_list $DIFFS)
printf '| rpull of all %s images (%s layers), %s x %s runs | median (s) | per layer (ms) |\n|---|---|---|\n' \
  "$IMAGES" "$NLAYERS" "$RUNS" "$PREPARE_RUNS"
# shellcheck disable=SC2016
printf '| cached: after `ctr image rm --sync` of all, layer indexes in the hoist cache | %.3f | %s |\n' "$C_MED" "$(ms_per_layer "$C_MED")"
printf '| present: every snapshot exists (no Prepare) | %.3f | %s |\n' "$P_MED" "$(ms_per_layer "$P_MED")"
printf '| cached - present, per run | %.3f | **%s** |\n' "$D_MED" "$(ms_per_layer "$D_MED")"
printf '\nPer run, cached / present (s): %s\n' \
  "$(awk -F'\t' 'NR > 1 {printf "%s%.2f/%.2f", s, $4, $5; s = ", "}' "$WORK/prepare.tsv")"
