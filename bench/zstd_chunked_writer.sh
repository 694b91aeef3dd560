#!/bin/bash
# bench/zstd_chunked_writer.sh BUILD_DIR [WORK_DIR]: the zstd:chunked writer over a ~300 MB tar
# of /usr (many small docs, python, perl, one 105 MB library), against `zstd -3` of the whole
# tar and skopeo's zstd:chunked of the same tar (from an OCI layout with an UNCOMPRESSED layer:
# skopeo 1.9.3 hangs on gzip input here). BUILD_DIR must be configured with
# -DCMAKE_BUILD_TYPE=Release -DHOIST_BUILD_BENCH=ON and have zstd_chunked_writer_bench built.
set -euo pipefail
build=$(realpath "$1")
work=${2:-/tmp/hoist-zstd-chunked-bench}
here=$(dirname "$(realpath "$0")")
mkdir -p "$work" && cd "$work"
if [ ! -f usr.tar ]; then
  tar -C /usr -cf usr.tar share/doc lib/python3.11 lib/x86_64-linux-gnu/perl \
    lib/x86_64-linux-gnu/libLLVM-14.so.1 2>/dev/null || true
fi
echo "tar: $(stat -c %s usr.tar) bytes, $(tar -tf usr.tar | wc -l) entries"
/usr/bin/time -f "zstd -3 -T1: %e s wall, %M KB max RSS" zstd -3 -T1 -q -f -o usr.tar.zst usr.tar
echo "zstd -3 size: $(stat -c %s usr.tar.zst)"
HOIST_BENCH_TAR=$work/usr.tar /usr/bin/time -f "bench: %M KB max RSS" \
  "$build/bench/zstd_chunked_writer_bench" "${@:3}"
if command -v skopeo >/dev/null && [ "${SKIP_SKOPEO:-0}" = 0 ]; then
  bash "$here/../tests/index/make_oci_layout.sh" usr.tar src >/dev/null
  rm -rf dst
  /usr/bin/time -f "skopeo zstd:chunked: %e s wall, %U s user, %M KB max RSS" \
    skopeo copy -q --dest-compress --dest-compress-format zstd:chunked oci:src:t oci:dst:t
  layer=$(jq -r '.layers[0].digest' dst/blobs/sha256/$(jq -r '.manifests[0].digest' \
    dst/index.json | cut -d: -f2) | cut -d: -f2)
  echo "skopeo size: $(stat -c %s dst/blobs/sha256/$layer)"
fi
