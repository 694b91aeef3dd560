#!/usr/bin/env bash
# Installs every Debian package that hoist's build, tests, demo and benchmarks need.
# Idempotent: runs apt-get update only when a package is missing.
set -euo pipefail

PACKAGES=(
  # build
  cmake ninja-build g++ pkg-config clang libclang-rt-14-dev clang-format
  clang-16 libclang-rt-16-dev  # fuzz build and thread-safety lane (std::expected: clang >= 16)
  libfuse3-dev fuse3 libcurl4-openssl-dev libzstd-dev liblmdb-dev lmdb-utils
  libxxhash-dev zlib1g-dev libssl-dev libgtest-dev libgmock-dev libbenchmark-dev
  rapidjson-dev libcli11-dev libtomlplusplus-dev
  # hoist-snapshotter: gRPC, protobuf, containerd's snapshots API protos and gogo.proto
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  golang-github-containerd-containerd-dev golang-github-gogo-protobuf-dev
  # tests and demo: real registry, real producers, real runtimes
  docker-registry skopeo umoci runc containerd stargz-snapshotter
  apache2-utils openssl python3 curl jq zstd gzip tar coreutils util-linux
  busybox-static iproute2 procps psmisc
  man-db groff-base bash git  # the generated hoist.1 (man --warnings) and bash completion; version
  systemd  # systemd-analyze verify of the unit files (tests/integration/runtime_test.cc)
  prometheus  # promtool check metrics on the daemons' /metrics (tests/integration/metrics_scrape_test)
  podman containernetworking-plugins slirp4netns uidmap  # hoist-store (hoist_store_test)
  # benchmarks
  debootstrap hyperfine squashfuse squashfs-tools erofs-utils fuse-overlayfs time
  strace  # bench/mount start: the prefetch list of the files python3 opens
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The distribution registry package ships a service; tests start their own instances.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl stop docker-registry || true
fi
# prometheus is installed for promtool only; its server is not wanted.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  systemctl stop prometheus || true
fi
