#!/usr/bin/env bash
# Builds omniround with warnings as errors and runs every test: first the CUDA build (compiled and linked; its GPU
# tests report "Skipped" where there is no GPU), then the fuzzer for a bounded time, then the tests that read
# untrusted input and the CLI tests under ASan + UBSan (scripts/sanitize_tests.sh, build-asan/), then the CPU build
# and its tests. The CPU tests come last so that the end of the log (what a CI summary shows) is their ctest report,
# followed by one line that counts what ran, passed and was skipped in each part.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
jobs=$(nproc)
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

# ctest's own summary: "…, F tests failed out of T" and one "(Skipped)" line per skipped test.
ctest_counts() {  # LOG -> "T run: P passed, F failed, S skipped"
  local total failed skipped
  total=$(sed -n 's/.*tests failed out of \([0-9]*\).*/\1/p' "$1" | tail -1)
  failed=$(sed -n 's/.* \([0-9]*\) tests failed out of.*/\1/p' "$1" | tail -1)
  skipped=$(grep -c '(Skipped)$' "$1" || true)
  echo "${total:-0} run: $(( ${total:-0} - ${failed:-0} - skipped )) passed, ${failed:-0} failed, ${skipped} skipped"
}

cuda_summary="CUDA: not built"
echo "== CUDA build (compile and link; GPU tests skip without a GPU)"
if [ -x /usr/local/cuda/bin/nvcc ]; then
  cmake -S . -B build-ci-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DOMNI_WERROR=ON -DOMNI_BENCH=OFF -DOMNI_CUDA=ON \
    -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc >/dev/null
  ninja -C build-ci-cuda -j"$jobs"
  ctest --test-dir build-ci-cuda --output-on-failure --no-tests=error -j"$jobs" -L cuda 2>&1 | tee "$logs/cuda"
  cuda_summary="CUDA tests: $(ctest_counts "$logs/cuda")"
else
  echo "no CUDA toolkit at /usr/local/cuda" >&2
  if [ "${CI:-}" = "true" ]; then exit 1; fi
fi

echo "== fixtures regenerate from their generators"
bash scripts/check_fixtures.sh

echo "== fuzzing the parsers (safetensors header, config.json, tokenizer.json)"
[ -f scripts/fuzz.sh ] || { echo "scripts/fuzz.sh is missing" >&2; exit 1; }
bash scripts/fuzz.sh "${OMNI_FUZZ_SECONDS:-120}" 2>&1 | tee "$logs/fuzz"
fuzz_runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$logs/fuzz" | awk "{s+=\$1} END {print s+0}")

echo "== sanitizers (ASan + UBSan)"
bash scripts/sanitize_tests.sh 2>&1 | tee "$logs/sanitize"
sanitize_summary="sanitized tests: $(ctest_counts "$logs/sanitize")"

echo "== CPU build (-Werror) and tests"
cmake -S . -B build-ci -G Ninja -DCMAKE_BUILD_TYPE=Release -DOMNI_WERROR=ON -DOMNI_BENCH=ON >/dev/null
ninja -C build-ci -j"$jobs"
# A smoke run of the benchmarks (do they still run?), not a timing check: speed targets are read off full runs.
echo "== benchmark smoke run"
build-ci/matmul_bench --benchmark_filter='MemoryRead|W4A16/M:1/N:4096/K:4096' --benchmark_min_time=0.05
build-ci/tune_block_bench --from-model models/tiny-qwen3 --nsamples 4 --seqlen 32 --batch-size 2 --iters 2 >/dev/null
ctest --test-dir build-ci --output-on-failure --no-tests=error -j"$jobs" 2>&1 | tee "$logs/cpu"

echo "== all tests passed. CPU tests: $(ctest_counts "$logs/cpu"); ${cuda_summary}; ${sanitize_summary}; fuzz: ${fuzz_runs:-0} runs, no finding"
