#!/usr/bin/env bash
# bench/stargz-store/build.sh: builds stargz-store (bench/stargz-store/main.go), stargz-snapshotter's
# additional layer store for podman, for bench/podman_pull_run.sh: bench/stargz/build.sh
# --main stargz-store (same library sources, GOPATH and Go build cache; see there).
#
#   bench/stargz-store/build.sh [--force]      prints the binary's path on stdout
exec "$(dirname "$0")/../stargz/build.sh" --main stargz-store "$@"
