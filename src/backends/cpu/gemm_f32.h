// General f32 matrix product for the training path (AutoRound block forward/backward), where all three
// shapes of a Linear's products occur: y = x·Wᵀ, dX = dY·W and dW = dYᵀ·X. Cache-blocked (packed panels of A
// and B, a register-tiled micro-kernel per SIMD path), multithreaded with parallel_for, f32 accumulation.
#pragma once

#include <cstdint>

namespace omni {

// C[M, N] = op(A)[M, K] · op(B)[K, N], or C += that product when `accumulate`.
// op(A) = A (row-major [M, K], row stride lda) or, with trans_a, Aᵀ where A is stored [K, M] (stride lda);
// op(B) = B (row-major [K, N], stride ldb) or, with trans_b, Bᵀ where B is stored [N, K] (stride ldb).
// C (row stride ldc) must not overlap A or B. K = 0 gives C = 0 (or leaves C unchanged when accumulating).
void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
              const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate);

}  // namespace omni
