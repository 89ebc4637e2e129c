// Dense linear layer on the CPU: y[M, N] = x[M, K] · W[N, K]ᵀ (+ bias[N]), f32 activations and f32
// accumulation. W is f32 or bf16 (raw uint16 bits, e.g. borrowed straight from an mmap'ed checkpoint).
#pragma once

#include <cstdint>

namespace omni {

// bias may be null. y must not overlap x or w.
void matmul_f32_weights(float* y, const float* x, const float* w, const float* bias, int64_t M, int64_t K,
                        int64_t N);
void matmul_bf16_weights(float* y, const float* x, const uint16_t* w, const float* bias, int64_t M, int64_t K,
                         int64_t N);

}  // namespace omni
