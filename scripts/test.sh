#!/usr/bin/env bash
# The whole test suite: installs what it needs (idempotent), checks formatting, builds with
# ASan+UBSan and -Werror, checks the lock annotations with clang, runs the unit tests, then every
# integration test (real registry, real FUSE, real runc), then runs each fuzz target briefly.
# Usage: scripts/test.sh [ctest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

bash scripts/setup.sh

# Lane 1: formatting (seconds).
echo "== format"
bash scripts/check-format.sh

# Lane 2: the build, warnings as errors.
build=${HOIST_TEST_BUILD_DIR:-$root/build-test}
mkdir -p "$build"
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Sanitize -DHOIST_WERROR=ON >/dev/null
else
  cmake -S "$root" -B "$build" -DHOIST_WERROR=ON >/dev/null
fi
echo "== build (ASan+UBSan, -Werror) in $build"
ninja -C "$build" -j"$(nproc)"

# Lane 3: lock rules, checked by clang's thread-safety analysis in a build of its own
# (scripts/thread-safety.sh: clang 16, -Wthread-safety -Werror, build-tsa).
echo "== thread-safety (clang)"
bash scripts/thread-safety.sh

# FUSE must be there for the integration tests; say so loudly if it is not.
if [ ! -c /dev/fuse ]; then
  echo "WARNING: /dev/fuse is missing: FUSE integration tests will FAIL, not skip." >&2
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export HOIST_BUILD_DIR=$build

# Lane 4: unit tests first, so a broken unit fails in minutes; lane 5: the integration tests
# (real registry, FUSE, runc, containerd; label "integration").
passed=0
failed=0
run_ctest() {  # NAME CTEST-ARGS...
  local name=$1
  shift
  local log=$build/ctest-$name.log
  echo "== $name tests"
  set +e
  (cd "$build" && ctest --output-on-failure --timeout 600 -j2 "$@") 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  set -e
  local line
  line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$log" | tail -n 1 || true)
  if [[ $line =~ ([0-9]+)\ tests\ failed\ out\ of\ ([0-9]+) ]]; then
    failed=$((failed + BASH_REMATCH[1]))
    passed=$((passed + BASH_REMATCH[2] - BASH_REMATCH[1]))
  fi
  if ((rc != 0)); then
    echo "tests: $passed passed, $failed failed"
    exit "$rc"
  fi
}
run_ctest unit -LE integration "$@"
run_ctest integration -L integration "$@"

if [ -x tests/fuzz/run.sh ] && [ "${HOIST_SKIP_FUZZ:-0}" != 1 ]; then
  echo "== fuzz targets (${HOIST_FUZZ_SECONDS:-15} s each)"
  tests/fuzz/run.sh "${HOIST_FUZZ_SECONDS:-15}"
fi
echo "== all tests passed"
# The closing line, in the plain form CI reads: ctest's counts (the fuzzers' result is above).
echo "tests: $passed passed, $failed failed"
