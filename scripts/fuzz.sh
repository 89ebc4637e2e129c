#!/usr/bin/env bash
# Builds every libFuzzer target (tests/fuzz/*_fuzz.cpp) with clang, ASan and UBSan in a separate build directory
# and runs each for a bounded time. Exits non-zero, naming the reproducer, on any finding.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET=60]
#   OMNI_FUZZ_BUILD_DIR=... scripts/fuzz.sh 300     (default build dir: build-fuzz/)
#
# Seeds come from tests/fuzz/corpus/<area>/ and a dictionary from tests/fuzz/<area>.dict when present (<area> =
# the fuzzer's name up to the first '_'); new inputs the fuzzer finds go to the build directory, never into the
# committed seeds.
set -euo pipefail

seconds=${1:-60}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${OMNI_FUZZ_BUILD_DIR:-$repo/build-fuzz}
jobs=${OMNI_BUILD_JOBS:-2}

command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ not found (Debian: apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }

CC=clang CXX=clang++ cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DOMNI_FUZZ=ON -DOMNI_TESTS=OFF -DOMNI_BENCH=OFF -DOMNI_NATIVE=OFF >/dev/null

targets=()
for src in "$repo"/tests/fuzz/*_fuzz.cpp; do targets+=("$(basename "$src" .cpp)"); done
[ ${#targets[@]} -gt 0 ] || { echo "fuzz.sh: no tests/fuzz/*_fuzz.cpp" >&2; exit 2; }
ninja -C "$build" -j "$jobs" "${targets[@]}"

status=0
for t in "${targets[@]}"; do
  area=${t%%_*}
  seeds="$repo/tests/fuzz/corpus/$area"
  work="$build/fuzz-corpus/$t"
  artifacts="$build/fuzz-artifacts"
  mkdir -p "$work" "$artifacts"
  dict=()
  if [ -f "$repo/tests/fuzz/$area.dict" ]; then dict=(-dict="$repo/tests/fuzz/$area.dict"); fi
  echo "== fuzzing $t for ${seconds}s (seeds: ${seeds#$repo/})"
  set +e
  "$build/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" \
    -artifact_prefix="$artifacts/$t-" "$work" "$seeds" 2>&1 | tee "$build/$t.log" | grep -E "^Done |stat::|ERROR|Sanitizer|runtime error|uncaught|promise|Test unit written" 
  rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" -ne 0 ]; then
    echo "FUZZ FINDING in $t (exit $rc); log: $build/$t.log" >&2
    for a in "$artifacts/$t-"*; do if [ -e "$a" ]; then echo "  reproduce: $build/$t $a" >&2; fi; done
    status=1
  fi
done
exit $status
