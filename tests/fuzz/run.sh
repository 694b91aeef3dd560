#!/usr/bin/env bash
# Builds hoist's libFuzzer targets with clang (ASan + UBSan + LeakSanitizer) and runs each one for
# SECONDS on a scratch copy of its checked-in corpus (tests/fuzz/corpus/<target>/; the copy grows,
# the checked-in corpus does not).
#
#   tests/fuzz/run.sh [SECONDS]        (default 15)
#
# Environment:
#   HOIST_FUZZ_BUILD_DIR  build directory (default <repo>/build-fuzz; configured on first use)
#   HOIST_FUZZ_CXX        clang++ to use (default: clang++-16, else clang++-17, clang++-18)
#   HOIST_FUZZ_JOBS       targets run at once (default: nproc)
#   HOIST_FUZZ_TARGETS    space-separated subset of targets to run (default: all)
#   HOIST_FUZZ_KEEP       directory to keep the grown corpora and crash artifacts in
#
# Prints one line per target: name, executions, result. Exits non-zero if any target crashed,
# leaked, timed out, ran out of memory or produced a sanitizer report; that target's log tail is
# printed and its reproducer is copied to <build>/fuzz-artifacts/<target>/.
# Why clang 16: see tests/fuzz/CMakeLists.txt (std::expected with libstdc++ 12).
set -euo pipefail
secs=${1:-15}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${HOIST_FUZZ_BUILD_DIR:-$root/build-fuzz}

cxx=${HOIST_FUZZ_CXX:-}
if [ -z "$cxx" ]; then
  for v in 16 17 18; do
    if command -v "clang++-$v" >/dev/null 2>&1; then cxx=clang++-$v; break; fi
  done
fi
if [ -z "$cxx" ]; then
  echo "fuzz: no clang++-16..18 found (Debian: apt-get install clang-16 libclang-rt-16-dev)" >&2
  exit 1
fi
cc=${cxx/clang++/clang}

if [ ! -f "$build/build.ninja" ] || ! grep -q "CMAKE_CXX_COMPILER:.*=.*$cxx\$" "$build/CMakeCache.txt"; then
  rm -rf "$build/CMakeCache.txt" "$build/CMakeFiles"
  mkdir -p "$build"
  echo "== fuzz: configuring $build with $cxx"
  CC=$cc CXX=$cxx cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Sanitize \
    -DHOIST_BUILD_TESTS=ON -DHOIST_BUILD_FUZZ=ON >"$build/fuzz-configure.log" 2>&1 ||
    { tail -30 "$build/fuzz-configure.log" >&2; exit 1; }
fi
echo "== fuzz: building targets"
ninja -C "$build" -j"$(nproc)" hoist_fuzz >"$build/fuzz-build.log" 2>&1 ||
  { grep -E "error|FAILED" -A3 "$build/fuzz-build.log" | head -40 >&2; exit 1; }

bindir=$build/tests/fuzz
targets=${HOIST_FUZZ_TARGETS:-$(cat "$bindir/fuzz_targets.txt")}
jobs=${HOIST_FUZZ_JOBS:-$(nproc)}
work=$(mktemp -d "${TMPDIR:-/tmp}/hoist-fuzz.XXXXXX")
cleanup() {
  if [ -n "${HOIST_FUZZ_KEEP:-}" ]; then mkdir -p "$HOIST_FUZZ_KEEP" && cp -r "$work"/. "$HOIST_FUZZ_KEEP"/; fi
  rm -rf "$work"
}
trap cleanup EXIT

export ASAN_OPTIONS=${HOIST_FUZZ_ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${HOIST_FUZZ_UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_one() {
  local t=$1 dir=$work/$1
  mkdir -p "$dir/corpus" "$dir/artifacts"
  if [ -d "$here/corpus/$t" ]; then cp -r "$here/corpus/$t/." "$dir/corpus/"; fi
  local rc=0
  "$bindir/$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$dir/artifacts/" "$dir/corpus" >"$dir/log" 2>&1 || rc=$?
  echo "$rc" >"$dir/rc"
}

echo "== fuzz: ${secs}s per target, $jobs at a time"
for t in $targets; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  run_one "$t" &
done
wait

failed=0
for t in $targets; do
  dir=$work/$t
  rc=$(cat "$dir/rc" 2>/dev/null || echo 99)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
  result=ok
  if [ "$rc" != 0 ] || grep -qE "^==[0-9]+==ERROR|runtime error:|^SUMMARY: |FUZZ_CHECK failed|ERROR: libFuzzer" "$dir/log"; then
    result="FAIL (exit $rc: $(grep -m1 -oE 'ERROR: [A-Za-z]+: [a-z-]+|ERROR: libFuzzer: [a-z-]+|runtime error: .{0,60}|FUZZ_CHECK failed: .{0,60}' "$dir/log" || echo unknown))"
    failed=1
  fi
  printf 'fuzz %-32s runs %-10s %s\n' "$t" "${runs:-?}" "$result"
  if [ "$result" != ok ]; then
    mkdir -p "$build/fuzz-artifacts/$t"
    cp "$dir"/artifacts/* "$build/fuzz-artifacts/$t/" 2>/dev/null || true
    cp "$dir/log" "$build/fuzz-artifacts/$t/log"
    echo "---- $t log (tail); reproducer in $build/fuzz-artifacts/$t/" >&2
    grep -vE "^#[0-9]+ +(NEW|REDUCE|pulse|INITED)" "$dir/log" | tail -40 >&2
  fi
done
if [ "$failed" != 0 ]; then
  echo "fuzz: FAILED" >&2
  exit 1
fi
echo "fuzz: all targets ok"
