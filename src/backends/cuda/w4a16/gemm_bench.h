// The W4A16 GEMM benchmark: per layer shape and M, our kernel against cuBLAS BF16 in the same run, with the
// device-to-device copy bandwidth measured first as the memory ceiling. Returns a markdown table.
#pragma once

#include <cstdint>
#include <string>

namespace omni::cuda {

struct GemmBenchOptions {
  bool quick = false;         // fewer shapes and M values, fewer repeats
  double graph_ms = 1.0;      // device time one timed graph replay aims at
  int replays = 9;            // timed replays; the median is reported
  int64_t only_n = 0, only_k = 0, only_m = 0;  // when set: just this layer shape (N x K) and M (for profilers)
};

std::string run_gemm_bench(const GemmBenchOptions& options);

}  // namespace omni::cuda
