#!/usr/bin/env bash
# bench/pull_run_profile.sh: where hoist-snapshotter's cold pull-to-output time goes (issue 13),
# and containerd's fixed costs with a pre-pulled image. Companion of bench/pull_run.sh: it uses
# the registry that script keeps ($HOIST_BENCH_CACHE/pull_run/registry, tags bench/py:gz,
# :estargz, :zstdchunked; run bench/pull_run.sh once first) and the same containerd and
# snapshotter start-up (bench/lib.sh).
#
# Usage (root):
#   bench/pull_run_profile.sh [--runs N] [--snapshotter PATH] [--prefetch MODE]
#                             [--cases "hoist-estargz hoist-zstdchunked overlayfs-prepulled
#                                       hoist-prepulled"] [--out DIR]
#
# Cases, each run from a new containerd (and snapshotter) with the page cache dropped:
#   hoist-estargz, hoist-zstdchunked  cold `ctr-remote image rpull` + `ctr run` as in
#       bench/pull_run.sh, with the snapshotter at --log-level debug (its stderr time-stamped on
#       arrival) and containerd at debug level, then split into phases from the three logs:
#       containerd's manifest/config fetches and hoist's registry requests (the registry's JSON
#       log: time and duration of each request, by user agent), each Prepare (the snapshotter's
#       "mounted lazily ... in N ms" and "index from ... (image A ms, index B ms, view C ms)"
#       lines), and during `ctr run`: python3's FUSE reads (debug "FUSE read ... us" lines) and
#       the range requests they caused ("fetched N chunks ... in N us"), prefetch requests apart.
#       Debug logging costs time of its own: these runs explain, bench/pull_run.sh measures.
#   overlayfs-prepulled  `ctr image pull` of the gzip image (not timed), caches dropped, then
#       `ctr run` timed to python3's first line: containerd + runc + python3 from local disk.
#   hoist-prepulled  the same with hoist-snapshotter and the zstd:chunked image: rpull and a
#       first `ctr run` (not timed; prefetch none still leaves what python3 read in the hoist
#       cache), caches dropped, `ctr run` timed: containerd + runc + python3 through FUSE with
#       every chunk it reads local.
#
# Prints markdown on stdout (one table of phases per cold run, medians of the pre-pulled
# cases); progress on stderr. --out DIR keeps the logs.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
CACHE=${HOIST_BENCH_CACHE:-/var/cache/hoist-bench}
RUNS=3
SNAP=
PREFETCH=
CASES_ARG="hoist-estargz hoist-zstdchunked overlayfs-prepulled hoist-prepulled"
OUT=
usage() {
  echo "usage: $0 [--runs N] [--snapshotter PATH] [--prefetch MODE] [--cases LIST] [--out DIR]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) [ $# -ge 2 ] || usage; RUNS=$2; shift 2 ;;
    --snapshotter) [ $# -ge 2 ] || usage; SNAP=$2; shift 2 ;;
    --prefetch) [ $# -ge 2 ] || usage; PREFETCH=$2; shift 2 ;;
    --cases) [ $# -ge 2 ] || usage; CASES_ARG=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || usage; OUT=$2; shift 2 ;;
    *) usage ;;
  esac
done
die() { echo "bench/pull_run_profile.sh: $*" >&2; exit 1; }
log() { echo "bench/pull_run_profile.sh: $*" >&2; }
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer, got '$RUNS'"
[ "$(id -u)" = 0 ] || die "needs root (containerd, overlayfs, FUSE, drop_caches)"
[ -n "$SNAP" ] || SNAP=$(bench_find_bin hoist-snapshotter) || die "no hoist-snapshotter (--snapshotter PATH)"
SNAP=$(realpath "$SNAP")
read -r -a CASES <<<"$CASES_ARG"
SN_ARGS=(--log-level debug)
[ -z "$PREFETCH" ] || SN_ARGS+=(--prefetch "$PREFETCH")

REGDIR=$CACHE/pull_run/registry
[ -d "$REGDIR/storage" ] || die "no registry at $REGDIR: run bench/pull_run.sh once first"
WORK=$(mktemp -d /tmp/hoist-pp-XXXXXX)
CASE_PIDS=()
cleanup() {
  local p
  for p in "${CASE_PIDS[@]}"; do bench_stop_pid "$p"; done
  bench_umount_under "$WORK"
  "$ROOT/tests/harness/registry.sh" stop "$REGDIR" >/dev/null 2>&1 || true
  if [ -n "$OUT" ]; then mkdir -p "$OUT"; cp -r "$WORK"/logs "$WORK"/*.tsv "$OUT"/ 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/logs"
REG=$("$ROOT/tests/harness/registry.sh" start "$REGDIR") || die "could not start the registry in $REGDIR"
for t in gz estargz zstdchunked; do
  curl -sf -o /dev/null -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$REG/v2/bench/py/manifests/$t" || die "the registry has no bench/py:$t: run bench/pull_run.sh first"
done

STAMP='import os, sys, time
buf = b""
while True:
    d = os.read(0, 65536)
    if not d:
        break
    now = b"%.6f " % time.time()
    buf += d
    *lines, buf = buf.split(b"\n")
    for l in lines:
        os.write(1, now + l + b"\n")'

start_containerd() {  # DIR  (extra config on stdin; containerd at debug level)
  local ok=0 extra
  extra=$(cat)
  bench_start_containerd "$1" <<<"$(printf '[debug]\n  level = "debug"\n%s\n' "$extra")" || ok=1
  CASE_PIDS+=("$CTD_PID")
  [ "$ok" = 0 ] || die "containerd did not start"
}
start_hoist() {  # DIR: hoist-snapshotter with time-stamped stderr; sets SN_PID, SN_SOCK
  local dir=$1
  mkdir -p "$dir"
  SN_SOCK=$dir/sn.sock
  "$SNAP" --address "$SN_SOCK" --root "$dir/sn-root" --cache "$dir/sn-cache" "${SN_ARGS[@]}" \
    > >(python3 -u -c "$STAMP" >"$dir/snapshotter.log") 2>&1 &
  SN_PID=$!
  CASE_PIDS+=("$SN_PID")
  for _ in $(seq 200); do [ -S "$SN_SOCK" ] && return 0; sleep 0.1; done
  die "hoist-snapshotter did not start: $(tail -c 300 "$dir/snapshotter.log")"
}
finish() {  # DIR
  local p
  for p in "${CASE_PIDS[@]}"; do bench_stop_pid "$p"; done
  CASE_PIDS=()
  bench_umount_under "$1"
  cp "$1"/*.log "$1"/times "$WORK/logs/" 2>/dev/null || true
  for f in "$1"/*.log "$1"/times; do [ -f "$f" ] && cp "$f" "$WORK/logs/$(basename "$1")-$(basename "$f")"; done
  rm -rf "$1"
}
PY=(python3 -c 'import json, sqlite3; print("python3 ok")')
now() { date +%s.%N; }
# `ctr run` to the first line; prints the time of that line.
run_to_first_line() {  # DIR NAME SNAPSHOTTER REF
  local dir=$1 name=$2 sn=$3 ref=$4 line
  line=$( { ctr -a "$CTD_SOCK" -n bench run --rm ${sn:+--snapshotter "$sn"} "$ref" "$name" "${PY[@]}" \
            2>"$dir/run.err" || echo "exit $?" >>"$dir/run.err"; } |
          { IFS= read -r l; now >"$dir/t1"; echo "$l"; cat >/dev/null; })
  [ "$line" = "python3 ok" ] || die "$name: ctr run printed '$line': $(tail -c 300 "$dir/run.err")"
  cat "$dir/t1"
}

ANALYZE='
import json, re, sys
from datetime import datetime, timezone
d, regdir = sys.argv[1], sys.argv[2]
t = dict(l.split() for l in open(d + "/times"))
t0, tr, t1 = float(t["t0"]), float(t["rpull_end"]), float(t["first_line"])
def iso(s):
    m = re.match(r"(\d+-\d+-\d+T\d+:\d+:\d+)(?:\.(\d+))?Z", s)
    base = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    return base + float("0." + (m.group(2) or "0"))
def dur(s):
    m = re.match(r"([\d.]+)(µs|ms|s|ns)", s)
    v = float(m.group(1)); return v * {"ns": 1e-9, "µs": 1e-6, "ms": 1e-3, "s": 1}[m.group(2)]
reqs = []
for line in open(regdir + "/registry.log"):
    if "response completed" not in line: continue
    j = json.loads(line); end = iso(j["time"])
    if end < t0 or end > t1 + 0.5: continue
    reqs.append((end - dur(j["http.response.duration"]), end, j["http.request.useragent"].split("/")[0],
                 j["http.request.method"], j["http.request.uri"], j.get("http.response.written", 0)))
sn = [(float(l.split(" ", 1)[0]), l.split(" ", 1)[1].rstrip("\n")) for l in open(d + "/snapshotter.log") if re.match(r"\d+\.\d+ ", l)]
ms = lambda a, b: "%.0f" % ((b - a) * 1000)
rows = [("rpull (ctr-remote image rpull, whole)", ms(t0, tr))]
ctd = [r for r in reqs if r[2] == "containerd" and r[0] < tr]
if ctd:
    rows.append(("  containerd: %d registry requests (manifest, config), first start to last end" % len(ctd), ms(ctd[0][0], ctd[-1][1])))
    rows.append(("  start of rpull to containerd first request", ms(t0, ctd[0][0])))
for ts, l in sn:
    m = re.search(r"\((sha256:[0-9a-f]{8})[0-9a-f]*\): mounted lazily .* in (\d+) ms", l)
    if m:
        rows.append(("  Prepare of layer %s (snapshotter Resolve), ends at +%s ms" % (m.group(1), ms(t0, ts)), m.group(2)))
    m = re.search(r"layer (sha256:[0-9a-f]{8})[0-9a-f]* of .*index from (\S+), (\d+) inodes \(image (\d+) ms, index (\d+) ms, view (\d+) ms\)", l)
    if m:
        rows.append(("    %s: image resolve %s ms, index (%s, %s inodes) %s ms, view %s ms" % (m.group(1), m.group(4), m.group(2), m.group(3), m.group(5), m.group(6)), ""))
hoist_pull = [r for r in reqs if r[2] != "containerd" and r[0] < tr]
for r in hoist_pull:
    rows.append(("    hoist %s %s (%d bytes), at +%s ms" % (r[3], r[4].split("/")[-2] + "/" + r[4].split("/")[-1][:19], r[5], ms(t0, r[0])), ms(r[0], r[1])))
rows.append(("ctr run: rpull end to python3 first line", ms(tr, t1)))
ctd_events = {}
for line in open(d + "/containerd.log"):
    m = re.search(r"time=\"([^\"]+)\".*topic=(/tasks/create|/tasks/start|/containers/create)", line)
    if m and m.group(2) not in ctd_events:
        ctd_events[m.group(2)] = iso(m.group(1))
for topic, what in (("/containers/create", "container created (snapshot, spec)"),
                    ("/tasks/create", "task created (shim, runc create)"),
                    ("/tasks/start", "task started (runc start)")):
    if topic in ctd_events:
        rows.append(("  %s, at rpull end +" % what, ms(tr, ctd_events[topic])))
reads = [(ts, l) for ts, l in sn if tr <= ts <= t1 and "FUSE read of" in l]
exe = [ts for ts, l in reads if "FUSE read of usr/bin/python3" in l]
if exe:
    rows.append(("  python3 executable first read, at rpull end +", ms(tr, exe[0])))
    rows.append(("  python3 first read to first line (its start through FUSE)", ms(exe[0], t1)))
lat = sorted(int(re.search(r"(\d+) us$", l).group(1)) for _, l in reads)
if reads:
    rows.append(("  first FUSE read after rpull end", ms(tr, reads[0][0])))
    rows.append(("  FUSE reads: %d, %d over 1 ms, sum of latency (ms; concurrent reads overlap)" % (len(lat), sum(1 for x in lat if x > 1000)), "%.0f" % (sum(lat) / 1000)))
    rows.append(("  FUSE read latency median / max (us)", "%d / %d" % (lat[len(lat) // 2], lat[-1])))
    rows.append(("  first to last FUSE read", ms(reads[0][0], reads[-1][0])))
    rows.append(("  last FUSE read to first line", ms(reads[-1][0], t1)))
for kind in ("fetched", "prefetched"):
    f = [(ts, l) for ts, l in sn if t0 <= ts <= t1 and re.search(r"hoist debug: %s \d+ chunks" % kind, l)]
    us = [int(re.search(r"in (\d+) us", l).group(1)) for _, l in f]
    rows.append(("  range requests %s (until first line): %d, sum of latency" % ("on demand" if kind == "fetched" else "by the prefetcher", len(us)), "%.0f" % (sum(us) / 1000)))
run_reqs = [r for r in reqs if r[0] >= tr and r[2] != "containerd"]
rows.append(("  registry bytes sent to hoist during ctr run", str(sum(r[5] for r in run_reqs))))
rows.append(("total pull-to-output", ms(t0, t1)))
print("| phase | ms |\n|---|---|")
for a, b in rows: print("| %s | %s |" % (a, b))
'

printf 'round\tcase\tload1\tseconds\n' >"$WORK/prepulled.tsv"
for round in $(seq "$RUNS"); do
  for name in "${CASES[@]}"; do
    load=$(cut -d' ' -f1 /proc/loadavg)
    log "round $round/$RUNS: $name (load $load)"
    dir=$WORK/r$round-$name
    mkdir -p "$dir"
    case $name in
      hoist-estargz | hoist-zstdchunked*)
        ref=$REG/bench/py:${name#hoist-}
        start_hoist "$dir"
        start_containerd "$dir" <<<"$(bench_proxy_plugin hoist "$SN_SOCK")"
        bench_drop_caches
        t0=$(now)
        ctr-remote -a "$CTD_SOCK" -n bench image rpull --plain-http --snapshotter hoist "$ref" >"$dir/pull.log" 2>&1 \
          || die "rpull failed: $(tail -c 300 "$dir/pull.log")"
        tr=$(now)
        t1=$(run_to_first_line "$dir" "pp-$name" hoist "$ref")
        printf 't0 %s\nrpull_end %s\nfirst_line %s\n' "$t0" "$tr" "$t1" >"$dir/times"
        sleep 0.5
        printf '#### %s, round %s (load %s before), %s s pull-to-output\n\n' "$name" "$round" "$load" \
          "$(echo "$t1 - $t0" | bc)"
        python3 -c "$ANALYZE" "$dir" "$REGDIR"
        echo
        ;;
      overlayfs-prepulled)
        ref=$REG/bench/py:gz
        start_containerd "$dir" </dev/null
        ctr -a "$CTD_SOCK" -n bench image pull --plain-http "$ref" >"$dir/pull.log" 2>&1 || die "pull failed"
        bench_drop_caches
        t0=$(now)
        t1=$(run_to_first_line "$dir" pp-ovl "" "$ref")
        printf '%s\t%s\t%s\t%s\n' "$round" "$name" "$load" "$(echo "$t1 - $t0" | bc)" >>"$WORK/prepulled.tsv"
        ;;
      hoist-prepulled)
        ref=$REG/bench/py:zstdchunked
        start_hoist "$dir"
        start_containerd "$dir" <<<"$(bench_proxy_plugin hoist "$SN_SOCK")"
        ctr-remote -a "$CTD_SOCK" -n bench image rpull --plain-http --snapshotter hoist "$ref" >"$dir/pull.log" 2>&1 \
          || die "rpull failed"
        run_to_first_line "$dir" pp-warm hoist "$ref" >/dev/null
        bench_drop_caches
        t0=$(now)
        t1=$(run_to_first_line "$dir" pp-hoist hoist "$ref")
        printf '%s\t%s\t%s\t%s\n' "$round" "$name" "$load" "$(echo "$t1 - $t0" | bc)" >>"$WORK/prepulled.tsv"
        ;;
      *) die "unknown case $name" ;;
    esac
    finish "$dir"
  done
done
if [ "$(wc -l <"$WORK/prepulled.tsv")" -gt 1 ]; then
  # shellcheck disable=SC2016
  printf '| pre-pulled image, `ctr run` to python3 first line, caches dropped | median (s) | per run (s) | load before |\n|---|---|---|---|\n'
  for name in overlayfs-prepulled hoist-prepulled; do
    vals=$(awk -F'\t' -v n="$name" '$2 == n {print $4}' "$WORK/prepulled.tsv")
    [ -n "$vals" ] || continue
    # shellcheck disable=SC2086
    printf '| %s | %.2f | %s | %s |\n' "$name" "$(bench_median_list $vals)" \
      "$(echo $vals | tr ' ' '\n' | paste -sd, | sed 's/,/, /g')" "$(awk -F'\t' -v n="$name" '$2 == n {printf "%s%s", s, $3; s = ", "}' "$WORK/prepulled.tsv")"
  done
fi
