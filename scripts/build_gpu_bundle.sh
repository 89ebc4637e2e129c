#!/usr/bin/env bash
# Builds what scripts/gpu_check.sh runs on a GPU machine, here on the Debian development machine: the CUDA build
# of omniround with ICU and PCRE2 linked statically (the GPU machines' Ubuntu image has neither Debian library;
# glibc and libstdc++ there are newer than Debian 12's, so those stay shared), the backend and model tests, and
# the CUDA benchmarks, copied (stripped) into one folder, and that folder packed as BUNDLE_DIR.tar.xz: the archive
# is what travels to the GPU machine (a few MB, where the binaries are tens).
#
#   scripts/build_gpu_bundle.sh [BUNDLE_DIR=.gpu/bundle]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bundle=${1:-$repo/.gpu/bundle}
build=${OMNI_GPU_BUILD_DIR:-$repo/build-gpu}
jobs=${OMNI_BUILD_JOBS:-$(nproc)}

cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DOMNI_CUDA=ON -DOMNI_STATIC_DEPS=ON \
  -DOMNI_NATIVE=OFF -DOMNI_BENCH=OFF -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc >/dev/null
targets=(omniround backend_ops_test causal_lm_golden_test)
for src in "$repo"/tests/backends/cuda/*_test.cu; do targets+=("$(basename "$src" .cu)"); done
while IFS= read -r src; do targets+=("$(basename "$src" .cpp)"); done < <(find "$repo/tests" -name '*_cuda_test.cpp' | sort)
for src in "$repo"/bench/cuda/*_bench.cu; do [ -e "$src" ] && targets+=("$(basename "$src" .cu)"); done
ninja -C "$build" -j"$jobs" "${targets[@]}"

mkdir -p "$bundle"
for t in "${targets[@]}"; do cp "$build/$t" "$bundle/"; strip --strip-unneeded "$bundle/$t"; done
# Anything left that the GPU machine lacks would show up here.
if ldd "$bundle/omniround" | grep -E "libicu|libpcre2|libpng|libz\."; then
  echo "build_gpu_bundle: omniround still links ICU, PCRE2, libpng or zlib dynamically" >&2
  exit 1
fi
tar cJf "$bundle.tar.xz" -C "$(dirname "$bundle")" "$(basename "$bundle")"
echo "bundle: $bundle ($(du -sh "$bundle" | cut -f1)), $bundle.tar.xz ($(du -sh "$bundle.tar.xz" | cut -f1)): ${targets[*]}"
