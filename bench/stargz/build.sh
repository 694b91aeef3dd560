#!/usr/bin/env bash
# bench/stargz/build.sh: builds one of our two mains over Debian's stargz-snapshotter 0.12
# library sources, in GOPATH mode:
#   containerd-stargz-grpc (bench/stargz/main.go, the default) for bench/pull_run.sh;
#   stargz-store (bench/stargz-store/main.go, `--main stargz-store`; bench/stargz-store/build.sh
#   runs this), the additional layer store for podman, for bench/podman_pull_run.sh.
#
#   bench/stargz/build.sh [--main containerd-stargz-grpc|stargz-store] [--force]
#                                        prints the binary's path on stdout
#
# Output: $HOIST_BENCH_CACHE/stargz/<main> (default cache /var/cache/hoist-bench), with the Go
# build cache (shared by both) next to it. Installs golang-go and
# golang-github-containerd-stargz-snapshotter-dev with apt when missing (root). Skips the build
# when the binary's stamp (hash of our sources, go and package versions) is current.
# GOPATH = bench/stargz/gopath (our stand-in for k8s.io/cri-api's AuthConfig) + /usr/share/gocode.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${HOIST_BENCH_CACHE:-/var/cache/hoist-bench}/stargz
NAME=containerd-stargz-grpc
FORCE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --force) FORCE=1; shift ;;
    --main) NAME=${2:-}; shift 2 ;;
    *) echo "usage: $0 [--main containerd-stargz-grpc|stargz-store] [--force]" >&2; exit 2 ;;
  esac
done
case "$NAME" in
  containerd-stargz-grpc) SRC=$HERE ;;
  stargz-store) SRC=$(cd "$HERE/../stargz-store" && pwd) ;;
  *) echo "$0: unknown --main '$NAME' (containerd-stargz-grpc, stargz-store)" >&2; exit 2 ;;
esac
BIN=$OUT/$NAME
die() { echo "bench/stargz/build.sh: $*" >&2; exit 1; }
log() { echo "bench/stargz/build.sh: $*" >&2; }

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

stamp=$( { cat "$SRC/main.go"; find "$HERE/gopath" -name '*.go' -print0 | sort -z | xargs -0 cat
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
  cd "$SRC"
  export GO111MODULE=off GOFLAGS='' GOPATH="$HERE/gopath:/usr/share/gocode" GOCACHE="$OUT/go-build"
  nice go build -p 2 -trimpath -o "$BIN.tmp" ./main.go
) || die "go build failed (see above)"
mv "$BIN.tmp" "$BIN"
echo "$stamp" >"$BIN.stamp"
log "built in $(echo "$(date +%s.%N) - $start" | bc) s"
echo "$BIN"
