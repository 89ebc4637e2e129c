// Prints the W4A16 vs cuBLAS BF16 table (see backends/cuda/w4a16/gemm_bench.h). Flags: --quick (3 shapes, 4 M
// values), --replays N, --point NxKxM (one layer shape and M, e.g. for a profiler).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>

#include "backends/cuda/cuda_runtime_info.h"
#include "backends/cuda/w4a16/gemm_bench.h"

int main(int argc, char** argv) {
  omni::cuda::GemmBenchOptions o;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      o.quick = true;
    } else if (std::strcmp(argv[i], "--replays") == 0 && i + 1 < argc) {
      o.replays = std::max(1, std::atoi(argv[++i]));
    } else if (std::strcmp(argv[i], "--point") == 0 && i + 1 < argc) {
      long long n = 0, k = 0, m = 0;
      if (std::sscanf(argv[++i], "%lldx%lldx%lld", &n, &k, &m) != 3 || n <= 0 || k <= 0 || m <= 0) {
        std::fprintf(stderr, "gemm_bench: --point wants NxKxM, e.g. 4096x4096x1\n");
        return 2;
      }
      o.only_n = n;
      o.only_k = k;
      o.only_m = m;
    } else {
      std::fprintf(stderr, "usage: %s [--quick] [--replays N] [--point NxKxM]\n", argv[0]);
      return 2;
    }
  }
  try {
    if (omni::cuda::device_count() == 0) {
      std::fprintf(stderr, "gemm_bench: no CUDA device\n");
      return 1;
    }
    std::fputs(omni::cuda::run_gemm_bench(o).c_str(), stdout);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gemm_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
