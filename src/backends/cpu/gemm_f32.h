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

// op(B) held in another format (bf16 or int4 weights [N, K]): the GEMM asks it for packed micro-panels, so each
// weight is converted once per call instead of once per row of A.
class GemmPanelSource {
 public:
  virtual ~GemmPanelSource() = default;
  // Writes bp[p * nr_stride + j] = op(B)[p0 + p, j0 + j] for p < kc, j < nr, and 0 for nr ≤ j < nr_stride.
  // j0 is a multiple of nr_stride (gemm_f32_panel_width()), p0 a multiple of 256 (the depth block), so kc is a
  // multiple of 8 whenever K is; calls may come from several threads at once.
  virtual void pack(float* bp, int nr_stride, int64_t p0, int64_t kc, int64_t j0, int64_t nr) const = 0;
};

// The micro-panel width (NR) of the active SIMD path.
int gemm_f32_panel_width();

// C[M, N] = A[M, K] · op(B), op(B) [K, N] given by its panel source; A row-major with stride lda.
void gemm_f32_packed_b(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const GemmPanelSource& B,
                       float* C, int64_t ldc);

}  // namespace omni
