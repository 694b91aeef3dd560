#!/usr/bin/env bash
# bench/published_index.sh: issue 17 item 2 ("Share it"), the python image as plain gzip
# (bench_python_layout: debootstrap bookworm + python3, two gzip layers, never converted).
#
#   index     `hoist index IMAGE` (stream every gzip layer once, index, publish) vs `gunzip -c` of
#             the same blobs to /dev/null, hyperfine, loopback registry. The artifact's size as a
#             share of the image's compressed size (from `hoist index`'s own output).
#   start     on each network of --net (loopback; 40ms = bench/wan_proxy RTT 40 ms, 200 Mbit/s):
#             hoistfs on a FRESH cache dir (page cache dropped) of the image whose index is
#             published + `chroot MNT python3 -c 'import json, sqlite3'`, vs `skopeo copy` +
#             `umoci unpack` + the same command. Bytes fetched (`hoist stats --json`: the layer
#             spans and the checkpoint windows the reads needed, each window one Range request
#             of the artifact's windows blob), plus the artifact's table blobs (the mount fetches
#             those whole), as a share of the image; counted on a separate first mount with
#             prefetch=none, so that only the start's own fetches count.
#
# Usage: bench/published_index.sh [--runs N] [--out DIR] [--net loopback,40ms] [--wan-proxy PATH]
# Prints a markdown table on stdout; hyperfine JSON and logs stay in --out. Needs root.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
CACHE=${HOIST_BENCH_CACHE:-/var/cache/hoist-bench}
RUNS=5
OUT=""
NET_LIST=loopback,40ms
WAN_PROXY=${WAN_PROXY:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --net) NET_LIST=$2; shift 2 ;;
    --wan-proxy) WAN_PROXY=$2; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--out DIR] [--net loopback,40ms] [--wan-proxy PATH]" >&2; exit 2 ;;
  esac
done
IFS=, read -r -a NETS <<<"$NET_LIST"
for n in "${NETS[@]}"; do
  bench_net_link "$n" >/dev/null || { echo "$0: unknown network '$n'" >&2; exit 2; }
  if [ -n "$(bench_net_link "$n")" ] && [ -z "$WAN_PROXY" ]; then
    WAN_PROXY=$(bench_find_wan_proxy) || { echo "$0: no wan_proxy binary; pass --wan-proxy" >&2; exit 1; }
  fi
done
HOIST=${HOIST:-$(bench_find_bin hoist)}
HOISTFS=${HOISTFS:-$(bench_find_bin hoistfs)}
for p in skopeo umoci hyperfine jq fusermount3 gunzip; do
  command -v "$p" >/dev/null || { echo "$0: $p is missing (scripts/setup.sh)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "$0: needs root" >&2; exit 1; }

WORK=${OUT:-$(mktemp -d /tmp/hoist-bench-pubindex-XXXXXX)}
mkdir -p "$WORK"
REGDIR=$WORK/registry
M=$WORK/mnt
C=$WORK/cache
cleanup() {
  mountpoint -q "$M" 2>/dev/null && fusermount3 -u "$M"
  bench_stop_wan_proxy
  "$ROOT/tests/harness/registry.sh" stop "$REGDIR" >/dev/null 2>&1 || true
  rm -rf "$REGDIR" "$C" "$WORK/pull" "$WORK/bundle"
}
trap cleanup EXIT
mkdir -p "$M"
cat >"$WORK/reset" <<EOF
#!/usr/bin/env bash
# reset: unmount (waiting for the daemon), wipe the cache, drop the page cache
set -u
if mountpoint -q "$M"; then
  pid=\$("$HOIST" stats "$M" --json 2>/dev/null | jq -r '.pid // empty' || true)
  fusermount3 -u "$M"
  if [ -n "\$pid" ]; then for _ in \$(seq 500); do kill -0 "\$pid" 2>/dev/null || break; sleep 0.01; done; fi
fi
rm -rf "$C"; sync; echo 3 >/proc/sys/vm/drop_caches
EOF
chmod +x "$WORK/reset"
PYCMD="python3 -c 'import json, sqlite3; print(1)'"
ms() { awk -v s="$1" 'BEGIN { printf "%.0f", s * 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }

addr=$("$ROOT/tests/harness/registry.sh" start "$REGDIR")
layout=$(bench_python_layout "$CACHE")
skopeo copy -q --insecure-policy --dest-tls-verify=false "oci:$layout:gz" "docker://$addr/bench/pyidx:gz"
IMAGE_BYTES=$(skopeo inspect --raw --tls-verify=false "docker://$addr/bench/pyidx:gz" | jq '[.layers[].size] | add')
BLOBS=$(skopeo inspect --raw --tls-verify=false "docker://$addr/bench/pyidx:gz" |
  jq -r '.layers[].digest | sub("sha256:"; "")' | sed "s|^|$layout/blobs/sha256/|" | tr '\n' ' ')

# 1. hoist index vs gunzip (each publish adds an artifact; the newest is what mounts use).
bench_log "hoist index vs gunzip: $RUNS runs each"
GUNZIP="for b in $BLOBS; do gunzip -c \$b >/dev/null; done"
hyperfine --runs "$RUNS" --export-json "$WORK/index.json" \
  -n hoist-index "$HOIST index -q $addr/bench/pyidx:gz >/dev/null" \
  -n gunzip "$GUNZIP" >&2
"$HOIST" index "$addr/bench/pyidx:gz" | tee "$WORK/index.txt" >&2
ART=$(awk '/^Digest: / {print $2}' "$WORK/index.txt")
INDEX_BYTES=$(skopeo inspect --raw --tls-verify=false "docker://$addr/bench/pyidx@$ART" | jq '[.layers[].size] | add')
TABLE_BYTES=$(skopeo inspect --raw --tls-verify=false "docker://$addr/bench/pyidx@$ART" |
  jq '[.layers[] | select(.mediaType | endswith(".table+zstd")) | .size] | add')

# 2. First mount on a fresh cache + python3, vs skopeo copy + umoci unpack + python3.
declare -A T_HOIST T_BASE FETCHED
for net in "${NETS[@]}"; do
  link=$(bench_net_link "$net")
  raddr=$addr
  if [ -n "$link" ]; then
    # shellcheck disable=SC2086
    bench_start_wan_proxy "$WAN_PROXY" "$addr" $link "$WORK/wan-$net"
    raddr=$WAN_ADDR
  fi
  bench_log "start on $net: $RUNS runs each"
  hyperfine --runs "$RUNS" --export-json "$WORK/start-$net.json" \
    -n hoistfs-published-index --prepare "$WORK/reset" \
      "$HOISTFS -o cache=$C $raddr/bench/pyidx:gz $M && chroot $M $PYCMD" \
    -n skopeo+umoci --prepare "rm -rf $WORK/pull $WORK/bundle; sync; echo 3 >/proc/sys/vm/drop_caches" \
      "skopeo copy -q --insecure-policy --src-tls-verify=false docker://$raddr/bench/pyidx:gz oci:$WORK/pull:gz && umoci unpack --image $WORK/pull:gz $WORK/bundle >/dev/null && chroot $WORK/bundle/rootfs $PYCMD" \
    >&2
  T_HOIST[$net]=$(bench_median "$WORK/start-$net.json" hoistfs-published-index)
  T_BASE[$net]=$(bench_median "$WORK/start-$net.json" skopeo+umoci)
  "$WORK/reset"
  # The bytes the start itself fetched: the same first mount with the background pass off
  # (prefetch=none), so a busy machine's slower start does not count that pass's spans.
  "$HOISTFS" -o "cache=$C,log_file=$WORK/hoistfs-$net.log,log_level=info,prefetch=none" "$raddr/bench/pyidx:gz" "$M"
  chroot "$M" python3 -c 'import json, sqlite3; print(1)' >/dev/null
  sleep 1.3  # the daemon writes its counters every second
  "$HOIST" stats "$M" --json >"$WORK/stats-$net.json"
  FETCHED[$net]=$(jq .bytes_fetched "$WORK/stats-$net.json")
  "$WORK/reset"
  bench_stop_wan_proxy
done

IDX=$(bench_median "$WORK/index.json" hoist-index)
GZ=$(bench_median "$WORK/index.json" gunzip)
echo "python image (plain gzip, $IMAGE_BYTES bytes compressed), $RUNS runs each, medians; $(date -u +%Y-%m-%d), $(nproc) cores, shared"
echo
echo "| measure | value |"
echo "|---|---|"
echo "| \`hoist index\` (fetch + index + publish, loopback) | $(ms "$IDX") ms |"
echo "| \`gunzip -c\` of the same blobs | $(ms "$GZ") ms |"
pct() { awk -v a="$1" -v b="$IMAGE_BYTES" 'BEGIN {printf "%.1f", 100 * a / b}'; }
echo "| index artifact (tables + windows blobs) | $INDEX_BYTES bytes ($(pct "$INDEX_BYTES")% of the image) |"
echo "| its tables (a mount fetches them whole) | $TABLE_BYTES bytes ($(pct "$TABLE_BYTES")% of the image) |"
for net in "${NETS[@]}"; do
  echo "| $(bench_net_label "$net"): first mount (published index) + python3 | $(ms "${T_HOIST[$net]}") ms |"
  echo "| $(bench_net_label "$net"): skopeo copy + umoci unpack + python3 | $(ms "${T_BASE[$net]}") ms ($(ratio "${T_BASE[$net]}" "${T_HOIST[$net]}")x) |"
  echo "| $(bench_net_label "$net"): layer spans + windows fetched by the start | ${FETCHED[$net]} ($(pct "${FETCHED[$net]}")% of the image) |"
  total=$((FETCHED[$net] + TABLE_BYTES))
  echo "| $(bench_net_label "$net"): the same + the tables | $total ($(pct "$total")% of the image) |"
done
