#!/usr/bin/env bash
# The thread-safety lane: builds hoist's libraries, binaries and tests with clang, whose
# thread-safety analysis checks every lock annotation (base/thread_annotations.h,
# base/mutex.h), with -Wthread-safety -Wthread-safety-beta -Werror: a guarded member touched
# without its lock, or a HOIST_REQUIRES function called without it, fails the build. Then it runs the ThreadSafety*
# tests, which prove the analysis is on (a file that breaks each rule must not compile).
#
#   scripts/thread-safety.sh
#
# Environment:
#   HOIST_TSA_BUILD_DIR  build directory (default <repo>/build-tsa; configured on first use)
#   HOIST_TSA_CXX        clang++ to use (default: clang++-16, else clang++-17, clang++-18)
#   HOIST_TSA_TESTS=0    skip the test programs (they use the annotated types too; about half
#                        of the lane's compile time)
#
# Unoptimised, without debug info: the analysis runs in the front end, so -O0 checks the same.
# Why clang 16: see tests/fuzz/CMakeLists.txt (std::expected with libstdc++ 12).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${HOIST_TSA_BUILD_DIR:-$root/build-tsa}

cxx=${HOIST_TSA_CXX:-}
if [ -z "$cxx" ]; then
  for v in 16 17 18; do
    if command -v "clang++-$v" >/dev/null 2>&1; then cxx=clang++-$v; break; fi
  done
fi
if [ -z "$cxx" ]; then
  echo "thread-safety: no clang++-16..18 found (Debian: apt-get install clang-16)" >&2
  exit 1
fi
cc=${cxx/clang++/clang}

if [ ! -f "$build/build.ninja" ] || ! grep -q "CMAKE_CXX_COMPILER:.*=.*$cxx\$" "$build/CMakeCache.txt"; then
  rm -rf "$build/CMakeCache.txt" "$build/CMakeFiles"
  mkdir -p "$build"
  launcher=()
  if command -v ccache >/dev/null 2>&1; then
    launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
  fi
  CC=$cc CXX=$cxx cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_CXX_FLAGS_DEBUG=-O0 -DCMAKE_C_FLAGS_DEBUG=-O0 -DHOIST_WERROR=ON \
    -DHOIST_BUILD_TESTS=ON "${launcher[@]}" >"$build/tsa-configure.log" 2>&1 ||
    { tail -30 "$build/tsa-configure.log" >&2; exit 1; }
fi

# Every production directory's targets (a new library or binary under them is included).
targets=(base/all metrics/all fetcher/all index/all fusefs/all tools/all)
if [ "${HOIST_TSA_TESTS:-1}" != 0 ]; then targets+=(tests/all); fi
echo "thread-safety: building ${targets[*]} with $cxx in $build"
ninja -C "$build" -j"$(nproc)" "${targets[@]}"

(cd "$build" && ctest --output-on-failure -R '^ThreadSafety')
echo "thread-safety: lock annotations checked"
