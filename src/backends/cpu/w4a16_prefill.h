// W4A16 prefill on the CPU: tiles of int4 weights are dequantised once per call into the f32 GEMM's packed
// panels (gemm_f32.h), so large batches run at the GEMM's compute rate instead of re-reading the weights.
#pragma once

#include <cstdint>

#include "backends/cpu/w4a16_matmul.h"

namespace omni {

// y[M, N] = x[M, padded_inputs] (packed input order) · dequant(W)ᵀ, exact f32 activations; no bias.
void w4a16_prefill(float* y, const float* x, const W4A16CpuWeights& w, int64_t M);

}  // namespace omni
