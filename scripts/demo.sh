#!/usr/bin/env bash
# The main job, on an embedded default: start a throwaway registry on 127.0.0.1, push the sample
# image, convert it to zstd:chunked with `hoist convert`, mount it lazily with `hoistfs` and look
# inside, then run a container on a lazy mount of it with `hoist run` (runc), and print what was
# fetched and how long it took.
# Installs and builds what it needs first (as root on Debian 12).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

bash scripts/setup.sh
build=${HOIST_BUILD_DIR:-$root/build-release}
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHOIST_BUILD_TESTS=OFF >/dev/null
fi
echo "== building hoist ($build)"
if ! ninja -C "$build" -j"$(nproc)" hoist hoistfs >"$build/demo-build.log" 2>&1; then
  tail -n 30 "$build/demo-build.log" >&2
  echo "demo: the build failed (full log: $build/demo-build.log)" >&2
  exit 1
fi
hoist=$build/tools/hoist
hoistfs=$build/tools/hoistfs

work=$(mktemp -d /tmp/hoist-demo.XXXXXX)
mnt=$work/mnt
cleanup() {
  mountpoint -q "$mnt" 2>/dev/null && fusermount3 -u "$mnt"
  tests/harness/registry.sh stop "$work/registry" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
ms() { date +%s%3N; }

addr=$(tests/harness/registry.sh start "$work/registry")
echo "== registry on $addr (storage in $work/registry)"

bash scripts/sample-image.sh "$work/layout" >/dev/null
skopeo copy --quiet --dest-tls-verify=false "oci:$work/layout:latest" "docker://$addr/hoist/sample:latest"
echo "== pushed $addr/hoist/sample:latest (gzip layers, as any build produces)"

t0=$(ms)
"$hoist" convert --quiet "docker://$addr/hoist/sample:latest" "docker://$addr/hoist/sample:zstd"
echo "== hoist convert -> $addr/hoist/sample:zstd (zstd:chunked) in $(( $(ms) - t0 )) ms"
"$hoist" inspect --no-tags "$addr/hoist/sample:zstd" | grep -E '"(Digest|MIMEType|Size)"' | sed 's/^/   /'

mkdir -p "$mnt"
t0=$(ms)
"$hoistfs" -o "cache=$work/cache,prefetch=none" "$addr/hoist/sample:zstd" "$mnt"
t_mount=$(( $(ms) - t0 ))
echo "== hoistfs mounted $addr/hoist/sample:zstd at $mnt in $t_mount ms (cold cache)"

t0=$(ms)
echo "   /: $(ls "$mnt" | tr '\n' ' ')"
echo "   /usr/share/hoist-sample: $(ls "$mnt/usr/share/hoist-sample" | wc -l) files"
cat "$mnt/usr/share/hoist-sample/hello.txt"
echo "== looked inside in $(( $(ms) - t0 )) ms"
sleep 1.2  # the mount writes its counters every second
echo "== what the look fetched (hoist stats $mnt)"
"$hoist" stats "$mnt" | sed 's/^/   /'
fusermount3 -u "$mnt"

echo "== hoist run --rm --timing: a container (runc) on a fresh lazy mount, cold cache"
"$hoist" run --rm --timing --cache "$work/run-cache" -o prefetch=none \
  "$addr/hoist/sample:zstd" /bin/sh -c 'cat /usr/share/hoist-sample/hello.txt; echo "in a container: $(id)"; wc -c /bin/busybox'
