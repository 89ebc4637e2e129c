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

// y[m, n] += bias[n] for rows 0..M and columns n0..n1 of y [M, N] (a no-op for a null bias): the epilogue of
// every CPU Linear kernel, per chunk of columns.
void add_bias_columns(float* y, const float* bias, int64_t M, int64_t N, int64_t n0, int64_t n1);

}  // namespace omni
