#!/usr/bin/env bash
# The main job, on an embedded default: start a throwaway registry on 127.0.0.1, push the sample
# image, and show what hoist sees of it. Installs and builds what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

bash scripts/setup.sh
build=${HOIST_BUILD_DIR:-$root/build-release}
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHOIST_BUILD_TESTS=OFF >/dev/null
fi
echo "== building hoist ($build)"
ninja -C "$build" -j"$(nproc)" hoist hoistfs >/dev/null
hoist=$build/tools/hoist

work=$(mktemp -d /tmp/hoist-demo.XXXXXX)
cleanup() {
  tests/harness/registry.sh stop "$work/registry" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

addr=$(tests/harness/registry.sh start "$work/registry")
echo "== registry on $addr (storage in $work/registry)"

bash scripts/sample-image.sh "$work/layout" >/dev/null
skopeo copy --quiet --dest-tls-verify=false "oci:$work/layout:latest" "docker://$addr/hoist/sample:latest"
echo "== pushed $addr/hoist/sample:latest"

echo "== hoist inspect $addr/hoist/sample:latest"
"$hoist" inspect "$addr/hoist/sample:latest"
echo "== hoist tags $addr/hoist/sample"
"$hoist" tags "$addr/hoist/sample"
