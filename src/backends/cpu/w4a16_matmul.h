// W4A16 linear layer on the CPU: int4 grouped weights (GPTQ convention, see linear_weight.h), f32 activations,
// f32 accumulation. The checkpoint packing is repacked once into tiles of 64 outputs so that each thread
// streams one contiguous block of memory (layout in w4a16_matmul.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "backends/linear_weight.h"
#include "core/tensor.h"

namespace omni {

// Outputs per tile: four 16-lane AVX-512 vectors.
inline constexpr int64_t kW4TileOutputs = 64;

struct W4A16CpuWeights {
  int64_t in_features = 0;   // K
  int64_t out_features = 0;  // N
  // Inputs after ordering them by group and padding every group to a multiple of 8 (== K for the usual
  // in-order layout with group sizes that are multiples of 8).
  int64_t padded_inputs = 0;
  int64_t num_tiles = 0;  // ceil(N / 64)
  // Word-row boundaries (one word row = 8 inputs) of the segments that share a scale; size num_segments + 1.
  std::vector<int64_t> segment_rows;
  Tensor codes;   // I32 [num_tiles, padded_inputs / 8, 64]; word nibble j = input 8r + j (as in GPTQ)
  Tensor scales;  // F16 [num_tiles, num_segments, 64]
  Tensor zeros;   // U8 [num_tiles, num_segments, 64], the real zero point
  bool symmetric = true;  // every zero point is 8: the kernels skip the zero correction
  // Padded input position -> original input index, or -1 for padding; empty when it is the identity.
  std::vector<int32_t> input_of_position;

  int64_t num_segments() const { return static_cast<int64_t>(segment_rows.size()) - 1; }
};

// Validates a checkpoint weight and repacks it. Bits other than 4 throw "not supported yet".
W4A16CpuWeights pack_w4a16_cpu(const GroupedIntWeight& w);

// y[M, N] = x[M, K] · dequant(W)ᵀ (+ bias[N]); bias may be null.
void w4a16_matmul(float* y, const float* x, const W4A16CpuWeights& w, const float* bias, int64_t M);

}  // namespace omni
