#!/usr/bin/env bash
# bench/survival/run.sh: the gap in service when a hoist mount's daemon is killed (kill -9) and
# restarted by its supervisor, and when it is upgraded (`hoist upgrade`), issue 14.
#
#   bench/survival/run.sh [--runs N] [--hoist PATH] [--hoistfs PATH]
#
# An image of 1,000 files (4 KiB - 1 MiB of random bytes, 20 directories) converted by `hoist
# convert rootfs:` into a docker-registry of its own on 127.0.0.1; mounted with prefetch=none and a
# fresh cache; then gap.py (see its header) with N kill runs and N upgrade runs on that mount.
# Prints gap.py's JSON lines; the summary lines carry the medians.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib.sh
source "$here/../lib.sh"
runs=11
hoist=${HOIST:-}
hoistfs=${HOISTFS:-}
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --hoist) hoist=$2; shift 2 ;;
    --hoistfs) hoistfs=$2; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--hoist PATH] [--hoistfs PATH]" >&2; exit 2 ;;
  esac
done
[ -n "$hoist" ] || hoist=$(bench_find_bin hoist)
[ -n "$hoistfs" ] || hoistfs=$(bench_find_bin hoistfs)
work=$(mktemp -d /tmp/hoist-bench-survival-XXXXXX)
mp=$work/mnt
cleanup() {
  "$hoist" umount "$mp" >/dev/null 2>&1 || true
  bash "$here/../../tests/harness/registry.sh" stop "$work/reg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
python3 - "$work/root" <<'PY'
import os, random, sys
random.seed(14)
root = sys.argv[1]
for i in range(1000):
    d = os.path.join(root, "d%d" % (i % 20))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%d" % i), "wb") as f:
        f.write(random.randbytes(random.choice([4096, 65536, 262144, 1048576])))
PY
addr=$(bash "$here/../../tests/harness/registry.sh" start "$work/reg")
"$hoist" convert -q "rootfs:$work/root" "docker://$addr/bench/survival:v1"
mkdir -p "$mp"
"$hoistfs" --cache "$work/cache" -o prefetch=none,log_level=info,log_file="$work/hoistfs.log" \
  "$addr/bench/survival:v1" "$mp"
# The state file (fusefs/stats_file.h): /run/hoist/mounts/<32 hex of sha256(mountpoint)>.json.
state=$(python3 - "$mp" <<'PY'
import hashlib, os, sys
mp = os.path.realpath(sys.argv[1])
print("/run/hoist/mounts/" + hashlib.sha256(mp.encode()).hexdigest()[:32] + ".json")
PY
)
bench_log "hoist $("$hoist" --version 2>/dev/null || echo "$hoist"), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$here/gap.py" "$mp" "$state" kill "$runs"
python3 "$here/gap.py" "$mp" "$state" upgrade "$runs" "$hoist"
bench_log "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
