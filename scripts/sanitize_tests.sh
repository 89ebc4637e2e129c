#!/usr/bin/env bash
# Builds omniround and the tests labelled "sanitize" (CMakeLists.txt: the tests that read the broken-file corpora
# and other untrusted input, and the CLI tests) with gcc's AddressSanitizer + UBSan in build-asan/, and runs them.
# Any report (a memory error, a leak, undefined behaviour) aborts the process and fails its test, also when the
# report comes from the omniround binary a CLI test runs (tests/support/sanitizer_report.h).
#
#   scripts/sanitize_tests.sh                 (build dir: build-asan/; OMNI_BUILD_JOBS=N to change the jobs)
#
# The last line counts what ran: "sanitized tests: N run, S skipped".
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$repo/build-asan
jobs=${OMNI_BUILD_JOBS:-$(nproc)}

# -O1 for the libraries; CMakeLists.txt puts the CPU kernels at -O2 (the tests that quantize spend their time
# there) and the programs at -O0 (compile time). -g1: line tables, enough for file:line in a report's stack.
# NDEBUG as in the Release build CI ships, so the code under test is the code that runs.
cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
  -DOMNI_SANITIZE=ON -DOMNI_CUDA=OFF -DOMNI_BENCH=OFF -DOMNI_WERROR=ON >/dev/null
# Only what the selection needs: the binary the CLI tests run and the labelled test programs (a test's program
# has the test's name).
mapfile -t tests < <(ctest --test-dir "$build" -N -L sanitize | sed -n 's/^ *Test *#[0-9]*: *//p')
[ ${#tests[@]} -gt 0 ] || { echo "sanitize_tests.sh: no test has the label 'sanitize'" >&2; exit 2; }
ninja -C "$build" -j "$jobs" omniround "${tests[@]}"

# abort_on_error: a report ends the process with SIGABRT, never with the exit status 1 that the error tests
# expect from omniround (ASan's and UBSan's own default exit status is 1).
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:abort_on_error=1

log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$SECONDS
set +e
ctest --test-dir "$build" --output-on-failure --no-tests=error -L sanitize -j "$jobs" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
total=$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' "$log" | tail -1)
skipped=$(grep -c '(Skipped)$' "$log" || true)
echo "sanitized tests: ${total:-0} run, ${skipped} skipped (ctest $((SECONDS - start)) s)"
exit "$rc"
