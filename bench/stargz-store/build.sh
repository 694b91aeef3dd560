#!/usr/bin/env bash
# bench/stargz-store/build.sh: builds stargz-store (bench/stargz-store/main.go), stargz-snapshotter's
# additional layer store for podman, from Debian's stargz-snapshotter 0.12 library sources in
# GOPATH mode, for bench/podman_pull_run.sh.
#
#   bench/stargz-store/build.sh [--force]      prints the binary's path on stdout
#
# Output: $HOIST_BENCH_CACHE/stargz/stargz-store (default cache /var/cache/hoist-bench), sharing
# the Go build cache of bench/stargz/build.sh. Installs golang-go and
# golang-github-containerd-stargz-snapshotter-dev with apt when missing (root). Skips the build
# when the binary's stamp (hash of our sources, go and package versions) is current.
# GOPATH = bench/stargz/gopath (the stand-in for k8s.io/cri-api's AuthConfig) + /usr/share/gocode.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
GOPATH_OURS=$(cd "$HERE/../stargz/gopath" && pwd)
OUT=${HOIST_BENCH_CACHE:-/var/cache/hoist-bench}/stargz
BIN=$OUT/stargz-store
FORCE=0
case "${1:-}" in
  "") ;;
  --force) FORCE=1 ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac
die() { echo "bench/stargz-store/build.sh: $*" >&2; exit 1; }
log() { echo "bench/stargz-store/build.sh: $*" >&2; }

PKGS=(golang-go golang-github-containerd-stargz-snapshotter-dev)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing packages ${missing[*]} (install them as root)"
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 \
    || die "apt-get install ${missing[*]} failed"
fi

stamp=$( { cat "$HERE/main.go"; find "$GOPATH_OURS" -name '*.go' -print0 | sort -z | xargs -0 cat
           dpkg-query -W "${PKGS[@]}"; go version; } | sha256sum | cut -d' ' -f1)
if [ $FORCE = 0 ] && [ -x "$BIN" ] && [ "$(cat "$BIN.stamp" 2>/dev/null)" = "$stamp" ]; then
  log "up to date: $BIN"
  echo "$BIN"
  exit 0
fi

mkdir -p "$OUT"
log "building $BIN (GOPATH mode, go $(go env GOVERSION))"
start=$(date +%s.%N)
(
  cd "$HERE"
  export GO111MODULE=off GOFLAGS='' GOPATH="$GOPATH_OURS:/usr/share/gocode" GOCACHE="$OUT/go-build"
  nice go build -p 2 -trimpath -o "$BIN.tmp" ./main.go
) || die "go build failed (see above)"
mv "$BIN.tmp" "$BIN"
echo "$stamp" >"$BIN.stamp"
log "built in $(echo "$(date +%s.%N) - $start" | bc) s"
echo "$BIN"
