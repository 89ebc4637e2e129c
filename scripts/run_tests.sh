#!/usr/bin/env bash
# Builds omniround with warnings as errors and runs every test; then compiles the CUDA build (its GPU tests
# skip where there is no GPU) and fuzzes the safetensors header parser for a bounded time.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
jobs=$(nproc)

echo "== CPU build (-Werror) and tests"
cmake -S . -B build-ci -G Ninja -DCMAKE_BUILD_TYPE=Release -DOMNI_WERROR=ON -DOMNI_BENCH=ON >/dev/null
ninja -C build-ci -j"$jobs"
ctest --test-dir build-ci --output-on-failure --no-tests=error -j"$jobs"

echo "== CUDA build (compile and link; GPU tests skip without a GPU)"
if [ -x /usr/local/cuda/bin/nvcc ]; then
  cmake -S . -B build-ci-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DOMNI_WERROR=ON -DOMNI_BENCH=OFF -DOMNI_CUDA=ON \
    -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc >/dev/null
  ninja -C build-ci-cuda -j"$jobs"
  ctest --test-dir build-ci-cuda --output-on-failure --no-tests=error -j"$jobs" -R cuda
else
  echo "no CUDA toolkit at /usr/local/cuda" >&2
  if [ "${CI:-}" = "true" ]; then exit 1; fi
fi

if [ -x scripts/fuzz.sh ] || [ -f scripts/fuzz.sh ]; then
  echo "== fuzzing the safetensors header parser"
  bash scripts/fuzz.sh "${OMNI_FUZZ_SECONDS:-120}"
fi
echo "== all tests passed"
