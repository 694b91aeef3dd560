#!/usr/bin/env bash
# The whole test suite: installs what it needs (idempotent), builds with ASan+UBSan, runs every
# unit and integration test (real registry, real FUSE, real runc), then runs each fuzz target
# briefly. Usage: scripts/test.sh [ctest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

bash scripts/setup.sh

build=${HOIST_TEST_BUILD_DIR:-$root/build-test}
mkdir -p "$build"
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Sanitize >/dev/null
fi
echo "== build (ASan+UBSan) in $build"
ninja -C "$build" -j"$(nproc)"

# FUSE must be there for the integration tests; say so loudly if it is not.
if [ ! -c /dev/fuse ]; then
  echo "WARNING: /dev/fuse is missing: FUSE integration tests will FAIL, not skip." >&2
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export HOIST_BUILD_DIR=$build

echo "== tests"
ctest_log=$build/ctest-last.log
(cd "$build" && ctest --output-on-failure --timeout 600 -j2 "$@") 2>&1 | tee "$ctest_log"
summary=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$ctest_log" | tail -n 1 || true)

if [ -x tests/fuzz/run.sh ] && [ "${HOIST_SKIP_FUZZ:-0}" != 1 ]; then
  echo "== fuzz targets (${HOIST_FUZZ_SECONDS:-15} s each)"
  tests/fuzz/run.sh "${HOIST_FUZZ_SECONDS:-15}"
fi
echo "== all tests passed"
# The closing line, in the plain form CI reads: ctest's count (the fuzzers' result is above).
if [[ $summary =~ ([0-9]+)\ tests\ failed\ out\ of\ ([0-9]+) ]]; then
  failed=${BASH_REMATCH[1]}
  echo "tests: $((BASH_REMATCH[2] - failed)) passed, $failed failed"
fi
