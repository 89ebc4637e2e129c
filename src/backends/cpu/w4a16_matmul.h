// W4A16 linear layer on the CPU: int4 grouped weights (GPTQ convention, see linear_weight.h), f32 in and out.
// The checkpoint packing is repacked once into tiles of 64 outputs so that each thread streams one contiguous
// block of memory (layout in w4a16_pack.cpp). Small batches (decode) run with 16-bit integer activations
// (W4A16Activations); large ones (prefill) dequantise tiles of weights once and run an f32 GEMM.
#pragma once

#include <cstdint>
#include <vector>

#include "backends/linear_weight.h"
#include "core/tensor.h"

namespace omni {

// Outputs per tile: four 16-lane AVX-512 vectors.
inline constexpr int64_t kW4TileOutputs = 64;
// Word rows (8 inputs each) per segment at most: 128 inputs share one activation scale in the integer kernels,
// and their i32 sums cannot overflow (16 rows × 8 inputs × 15 × 32767 < 2^31).
inline constexpr int64_t kW4MaxSegmentRows = 16;

// How the small-batch kernels take x.
enum class W4A16Activations {
  // Default. Each row of x is rounded, per segment of at most 128 inputs, to 16-bit integers with one f32 scale
  // (max|x| / 32767); integer dot products sum exactly in i32, then scale. The rounding error per input is at
  // most max|x| / 65534 of its segment, well below bf16's 2^-9 relative: 16-bit activations, as on the GPU.
  Int16,
  // x in f32 exactly (the reference; the dequantisation costs 2–3x more instructions per weight).
  F32,
};
void set_w4a16_cpu_activations(W4A16Activations a);  // process-wide; tests and benchmarks compare both
W4A16Activations w4a16_cpu_activations();
// Batches of at least this many rows take the prefill GEMM (f32, weights dequantised once per block).
inline constexpr int64_t kW4PrefillMinRows = 8;

struct W4A16CpuWeights {
  int64_t in_features = 0;   // K
  int64_t out_features = 0;  // N
  // Inputs after ordering them by group and padding every group to a multiple of 8 (== K for the usual
  // in-order layout with group sizes that are multiples of 8).
  int64_t padded_inputs = 0;
  int64_t num_tiles = 0;  // ceil(N / 64)
  // Word-row boundaries (one word row = 8 inputs) of the segments (runs of at most kW4MaxSegmentRows rows that
  // share a scale); size num_segments + 1.
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
