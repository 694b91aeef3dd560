# bench/lib.sh: helpers shared by the bench/ scripts (source it; bash only).
# shellcheck shell=bash disable=SC2034
#
#   bench_find_bin NAME            -> path of a built hoist/hoistfs (HOIST/HOISTFS env, else build dirs)
#   bench_python_layout CACHE      -> builds once and prints CACHE/layout: the debootstrap bookworm +
#                                     python3 image as an OCI layout, tag "gz", two gzip layers
#                                     (same recipe and cache as bench/convert, so either builds it)
#   bench_layout_from_dirs OUT TAG COMPRESS DIR...
#                                  -> an OCI layout with one layer per DIR (COMPRESS: gzip|zstd|none)
#   bench_drop_caches              -> sync; echo 3 > /proc/sys/vm/drop_caches
#   bench_median JSON NAME         -> hyperfine median (s) of command NAME in an --export-json file
#   bench_median_list v1 v2 ...    -> median of numbers
#   bench_stop_pid PID             -> SIGTERM, up to 10 s, then SIGKILL; reaps it
#   bench_umount_under DIR         -> unmounts every mount below DIR, deepest first
#   bench_start_containerd DIR     -> a containerd 1.6 of its own in DIR (root, state, socket,
#                                     config; CRI disabled), extra config on stdin; sets CTD_PID,
#                                     CTD_SOCK
#   bench_start_snapshotter KIND BIN DIR [ARG...]
#                                  -> a snapshotter daemon (KIND: stargz|hoist) on DIR/sn.sock
#                                     with root DIR/sn-root (hoist: cache DIR/sn-cache), log
#                                     DIR/snapshotter.log; sets SN_PID, SN_SOCK
#   bench_proxy_plugin NAME SOCK   -> the containerd config lines registering a snapshot proxy
#   bench_find_wan_proxy           -> path of a built wan_proxy (WAN_PROXY env, else build dirs)
#   bench_net_link NET             -> "RTT_MS RATE" of a --net name (10ms: 10 1gbit, 40ms: 40
#                                     200mbit; loopback: nothing); returns 1 for an unknown name
#   bench_net_label NET            -> its human name ("RTT 40 ms, 200 Mbit/s", "loopback")
#   bench_start_wan_proxy BIN UPSTREAM RTT_MS RATE DIR
#                                  -> a wan_proxy (bench/wan_proxy) in front of UPSTREAM
#                                     (HOST:PORT) on a free 127.0.0.1 port, log DIR/wan_proxy.log;
#                                     sets WAN_PID, WAN_ADDR (127.0.0.1:PORT)
#   bench_stop_wan_proxy           -> stops the one bench_start_wan_proxy started, if any
#   bench_rounds TSV RUNS CASE...  -> RUNS rounds of every CASE, the order rotated each round, into
#                                     TSV (round, case, load1, seconds, registry_bytes); the
#                                     script defines run_case NAME DIR (writes DIR/result: "SECONDS
#                                     BYTES"), finish_case DIR (cleans up), and log MSG; DIR is
#                                     $WORK/r<round>-<case>
#   bench_rounds_median TSV CASE FIELD
#                                  -> median of FIELD over CASE's rounds in a bench_rounds TSV
#
# Everything needs root (debootstrap, drop_caches, chroot, FUSE mounts).

bench_log() { echo "bench: $*" >&2; }
bench_sha() { sha256sum "$1" | cut -d' ' -f1; }

bench_find_bin() {  # NAME
  local name=$1 root c
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  for c in "$root"/build-bench/tools/"$name" "$root"/build-release/tools/"$name" \
           "$root"/build/tools/"$name" "$root"/build-*/tools/"$name"; do
    if [ -x "$c" ]; then echo "$c"; return 0; fi
  done
  return 1
}

bench_drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

bench_median() {  # JSON NAME
  jq -r --arg n "$2" '.results[] | select(.command == $n) | .median' "$1"
}

bench_median_list() {
  printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'
}

# Writes an OCI layout with one layer per directory (tar --format=pax, sorted, fixed mtime,
# numeric root ownership). COMPRESS is gzip, zstd or none.
bench_layout_from_dirs() {  # OUT TAG COMPRESS DIR...
  local out=$1 tag=$2 comp=$3; shift 3
  local tmp layers_json="" diff_ids="" d diff dg size mt cdg csize mdg msize
  rm -rf "$out"; mkdir -p "$out/blobs/sha256"
  tmp=$(mktemp -d "$out.build.XXXXXX")
  for d in "$@"; do
    tar -C "$d" --format=pax --numeric-owner --sort=name --mtime=@1700000000 --owner=0 --group=0 \
        -cf "$tmp/layer.tar" .
    diff=$(bench_sha "$tmp/layer.tar")
    case "$comp" in
      gzip) gzip -n -6 -c "$tmp/layer.tar" >"$tmp/blob"; mt=application/vnd.oci.image.layer.v1.tar+gzip ;;
      zstd) zstd -q -3 -T0 -c "$tmp/layer.tar" >"$tmp/blob"; mt=application/vnd.oci.image.layer.v1.tar+zstd ;;
      none) mv "$tmp/layer.tar" "$tmp/blob"; mt=application/vnd.oci.image.layer.v1.tar ;;
      *) echo "bench_layout_from_dirs: bad compression $comp" >&2; return 1 ;;
    esac
    rm -f "$tmp/layer.tar"
    dg=$(bench_sha "$tmp/blob"); size=$(stat -c %s "$tmp/blob")
    mv "$tmp/blob" "$out/blobs/sha256/$dg"
    layers_json+="${layers_json:+,}{\"mediaType\":\"$mt\",\"digest\":\"sha256:$dg\",\"size\":$size}"
    diff_ids+="${diff_ids:+,}\"sha256:$diff\""
  done
  printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
    "$diff_ids" >"$tmp/config.json"
  cdg=$(bench_sha "$tmp/config.json"); csize=$(stat -c %s "$tmp/config.json")
  mv "$tmp/config.json" "$out/blobs/sha256/$cdg"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
    "$cdg" "$csize" "$layers_json" >"$tmp/manifest.json"
  mdg=$(bench_sha "$tmp/manifest.json"); msize=$(stat -c %s "$tmp/manifest.json")
  mv "$tmp/manifest.json" "$out/blobs/sha256/$mdg"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$out/oci-layout"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
    "$mdg" "$msize" "$tag" >"$out/index.json"
  rm -rf "$tmp"
}

# The python image of bench/convert (same cache layout: $CACHE/rootfs, $CACHE/layout, tag "gz",
# $CACHE/tar-bytes), built with the same steps if bench/convert has not built it yet.
bench_python_layout() {  # CACHE
  local cache=$1 layout=$1/layout mirror s d recipe=2
  # Recipe 2 keeps the rootfs files' own mtimes. Recipe 1 set every mtime to 1700000000, which
  # made each of python's .pyc files stale against its .py (the .pyc records the source's mtime):
  # python then read and compiled every module's source at each start, unlike any built image.
  if [ -f "$layout/index.json" ] && [ "$(cat "$layout/bench-recipe" 2>/dev/null)" = $recipe ]; then
    echo "$layout"; return 0
  fi
  mkdir -p "$cache"
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
  if [ ! -x "$cache/rootfs/usr/bin/python3" ]; then
    bench_log "debootstrap bookworm (minbase + python3) from $mirror"
    rm -rf "$cache/rootfs"
    debootstrap --variant=minbase --include=python3 bookworm "$cache/rootfs" "$mirror" \
      >"$cache/debootstrap.log" 2>&1
  fi
  rm -rf "$cache/build" "$layout"
  mkdir -p "$cache/build" "$layout/blobs/sha256"
  local tarflags=(--format=pax --numeric-owner --xattrs --sort=name --owner=0 --group=0)
  bench_log "python image layer 1: the rootfs"
  tar -C "$cache/rootfs" "${tarflags[@]}" --pax-option=delete=atime,delete=ctime --exclude=./proc/* --exclude=./sys/* --exclude=./dev/* \
      -cf "$cache/build/l1.tar" .
  bench_log "python image layer 2: whiteouts for docs, locales and man pages, and one new file"
  tarflags+=(--mtime=@1700000000)
  s=$cache/build/l2
  mkdir -p "$s/usr/share" "$s/etc"
  for d in doc locale man info; do
    [ -e "$cache/rootfs/usr/share/$d" ] && : >"$s/usr/share/.wh.$d"
  done
  mkdir -p "$s/var/cache/apt" && : >"$s/var/cache/apt/.wh..wh..opq"
  echo "converted by bench/convert" >"$s/etc/bench-note"
  tar -C "$s" "${tarflags[@]}" -cf "$cache/build/l2.tar" .
  local layers_json="" diff_ids="" l diff dg size cdg csize mdg msize
  for l in l1 l2; do
    diff=$(bench_sha "$cache/build/$l.tar")
    gzip -n -6 -c "$cache/build/$l.tar" >"$cache/build/$l.tar.gz"
    dg=$(bench_sha "$cache/build/$l.tar.gz")
    mv "$cache/build/$l.tar.gz" "$layout/blobs/sha256/$dg"
    size=$(stat -c %s "$layout/blobs/sha256/$dg")
    layers_json+="${layers_json:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$dg\",\"size\":$size}"
    diff_ids+="${diff_ids:+,}\"sha256:$diff\""
  done
  printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["/usr/bin/python3"]},"rootfs":{"type":"layers","diff_ids":[%s]},"history":[{"created_by":"debootstrap"},{"created_by":"cleanup"}]}' \
    "$diff_ids" >"$cache/build/config.json"
  cdg=$(bench_sha "$cache/build/config.json"); csize=$(stat -c %s "$cache/build/config.json")
  cp "$cache/build/config.json" "$layout/blobs/sha256/$cdg"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[%s]}' \
    "$cdg" "$csize" "$layers_json" >"$cache/build/manifest.json"
  mdg=$(bench_sha "$cache/build/manifest.json"); msize=$(stat -c %s "$cache/build/manifest.json")
  cp "$cache/build/manifest.json" "$layout/blobs/sha256/$mdg"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"gz"}}]}' \
    "$mdg" "$msize" >"$layout/index.json"
  echo $(( $(stat -c %s "$cache/build/l1.tar") + $(stat -c %s "$cache/build/l2.tar") )) >"$cache/tar-bytes"
  echo $recipe >"$layout/bench-recipe"
  rm -rf "$cache/build"
  echo "$layout"
}

bench_stop_pid() {  # PID
  local pid=$1 i
  kill "$pid" 2>/dev/null || return 0
  for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

bench_umount_under() {  # DIR
  { grep -o " $1/[^ ]*" /proc/self/mounts || true; } | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" || true
  done
}

# Returns 1 with one line on stderr when the socket does not appear within 20 s.
bench_start_containerd() {  # DIR  (extra config on stdin)
  local dir=$1 i
  mkdir -p "$dir"
  CTD_SOCK=$dir/ctd.sock
  {
    printf 'version = 2\nroot = "%s/root"\nstate = "%s/state"\n' "$dir" "$dir"
    printf 'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "%s"\n' "$CTD_SOCK"
    cat
  } >"$dir/containerd.toml"
  containerd --config "$dir/containerd.toml" >"$dir/containerd.log" 2>&1 &
  CTD_PID=$!
  for i in $(seq 200); do [ -S "$CTD_SOCK" ] && return 0; sleep 0.1; done
  echo "containerd did not open $CTD_SOCK within 20 s: $(tail -c 300 "$dir/containerd.log")" >&2
  return 1
}

bench_start_snapshotter() {  # KIND BIN DIR [ARG...]
  local kind=$1 bin=$2 dir=$3 i
  shift 3
  mkdir -p "$dir"
  SN_SOCK=$dir/sn.sock
  case $kind in
    stargz) "$bin" --address "$SN_SOCK" --root "$dir/sn-root" "$@" >"$dir/snapshotter.log" 2>&1 & ;;
    hoist) "$bin" --address "$SN_SOCK" --root "$dir/sn-root" --cache "$dir/sn-cache" "$@" \
             >"$dir/snapshotter.log" 2>&1 & ;;
    *) echo "bench_start_snapshotter: unknown kind $kind" >&2; return 1 ;;
  esac
  SN_PID=$!
  for i in $(seq 200); do [ -S "$SN_SOCK" ] && return 0; sleep 0.1; done
  echo "$kind snapshotter did not open $SN_SOCK within 20 s: $(tail -c 300 "$dir/snapshotter.log")" >&2
  return 1
}

bench_proxy_plugin() {  # NAME SOCK
  printf '[proxy_plugins.%s]\n  type = "snapshot"\n  address = "%s"\n' "$1" "$2"
}

bench_find_wan_proxy() {
  local root c
  if [ -n "${WAN_PROXY:-}" ]; then echo "$WAN_PROXY"; return 0; fi
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  for c in "$root"/build-bench/bench/wan_proxy/wan_proxy "$root"/build-release/bench/wan_proxy/wan_proxy \
           "$root"/build/bench/wan_proxy/wan_proxy "$root"/build-*/bench/wan_proxy/wan_proxy; do
    if [ -x "$c" ]; then echo "$c"; return 0; fi
  done
  return 1
}

# The emulated networks of the benches' --net option. loopback is the registry itself, no proxy.
bench_net_link() {  # NET
  case $1 in
    loopback) echo "" ;;
    10ms) echo "10 1gbit" ;;
    40ms) echo "40 200mbit" ;;
    *) return 1 ;;
  esac
}
bench_net_label() {  # NET
  case $1 in
    loopback) echo "loopback" ;;
    10ms) echo "RTT 10 ms, 1 Gbit/s" ;;
    40ms) echo "RTT 40 ms, 200 Mbit/s" ;;
    *) echo "$1" ;;
  esac
}

# Returns 1 with one line on stderr when the proxy has not written its port within 20 s.
WAN_PID=""
bench_start_wan_proxy() {  # BIN UPSTREAM RTT_MS RATE DIR
  local bin=$1 upstream=$2 rtt=$3 rate=$4 dir=$5 i
  mkdir -p "$dir"
  rm -f "$dir/wan_proxy.port"
  "$bin" --listen 127.0.0.1:0 --upstream "$upstream" --rtt-ms "$rtt" --rate "$rate" \
    --port-file "$dir/wan_proxy.port" >"$dir/wan_proxy.log" 2>&1 &
  WAN_PID=$!
  for i in $(seq 200); do
    if [ -s "$dir/wan_proxy.port" ]; then
      WAN_ADDR=127.0.0.1:$(cat "$dir/wan_proxy.port")
      return 0
    fi
    kill -0 "$WAN_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "wan_proxy did not start within 20 s: $(tail -c 300 "$dir/wan_proxy.log")" >&2
  return 1
}

bench_stop_wan_proxy() {
  [ -n "$WAN_PID" ] || return 0
  bench_stop_pid "$WAN_PID"
  WAN_PID=""
}

bench_rounds() {  # TSV RUNS CASE...
  local tsv=$1 runs=$2 round i n name load dir secs bytes
  shift 2
  local cases=("$@")
  n=${#cases[@]}
  printf 'round\tcase\tload1\tseconds\tregistry_bytes\n' >"$tsv"
  for round in $(seq "$runs"); do
    for i in $(seq 0 $((n - 1))); do
      name=${cases[$(( (i + round - 1) % n ))]}
      load=$(cut -d' ' -f1 /proc/loadavg)
      log "round $round/$runs: $name (load $load)"
      dir=$WORK/r$round-$name
      run_case "$name" "$dir"
      read -r secs bytes <"$dir/result"
      finish_case "$dir"
      log "  $secs s, $bytes bytes from the registry"
      printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$load" "$secs" "$bytes" >>"$tsv"
    done
  done
}

bench_rounds_median() {  # TSV CASE FIELD
  # shellcheck disable=SC2046
  bench_median_list $(awk -F'\t' -v n="$2" -v c="$3" \
    'NR == 1 {for (i = 1; i <= NF; i++) if ($i == c) k = i; next} $2 == n {print $k}' "$1")
}
