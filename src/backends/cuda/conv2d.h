// conv2d on the CUDA backend (backend.h's contract: NCHW, stride 1, zero padding, f32 weights and bias), as raw
// device pointers so that the backend and the benchmark run the same code (C++17-clean: .cu files include it).
//
// Few output channels (a VAE's conv_out to RGB): a direct kernel, f32 weights. Otherwise y_b [Cout, P] = w [Cout, K]
// · col_b [K, P] with col the column matrix (K = Cin·kh·kw; a 1×1 kernel without padding multiplies x itself), in
// column-major terms y_bᵀ [P, Cout] = col_bᵀ [P, K] · wᵀ [K, Cout]: cuBLAS on the activation dtype's tensor cores
// with f32 accumulation (F32 activations multiply in f32, no TF32). The weights are rounded to the activation dtype
// first — the one difference from the CPU backend, which multiplies its f32 weights. y starts as the bias and the
// GEMM adds to it (beta = 1), so each output is rounded once. Whole images go through one batched GEMM while their
// column matrices fit the limit; a larger image is cut into balanced bands of output rows.
// Cost (H200, BF16, bench/cuda/diffusion_ops_bench): the GEMMs run at cuBLAS's rate (465-860 TFLOP/s), but writing
// and reading the column matrix makes a 3×3 convolution 7x (512 channels at 128²) to 17x (128 channels at 1024²)
// the GEMM alone; an implicit GEMM that gathers the columns into shared memory is the step that removes it.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/dtype.h"

namespace omni::cuda {

struct Conv2dShape {
  int64_t B = 0, Cin = 0, H = 0, W = 0, Cout = 0, kh = 0, kw = 0, pad = 0;
  int64_t Ho() const { return H + 2 * pad - kh + 1; }
  int64_t Wo() const { return W + 2 * pad - kw + 1; }
};

struct Conv2dPlan {
  enum class Path { Direct, Gemm1x1, WholeImages, Bands } path = Path::Direct;
  int64_t images_per_gemm = 1;  // WholeImages: images per batched GEMM
  int64_t band_rows = 0;        // Bands: output rows per band (the last may have fewer)
  int64_t weight_elems = 0;     // scratch: the weights in the activation dtype (0 with F32 activations)
  int64_t column_elems = 0;     // scratch: one column matrix
  int64_t scratch_bytes = 0;    // both, each 256-byte aligned
};

// The most column-matrix elements one GEMM takes: 2^26 (128 MiB in BF16), large enough that each band's GEMM runs at
// the tensor cores' rate (a 1024² image of 128 channels takes 19 bands). OMNI_CUDA_CONV2D_BAND_ELEMS=n in the
// environment lowers it (tests reach the banded path with small images).
int64_t conv2d_column_limit();
Conv2dPlan plan_conv2d(const Conv2dShape& s, DType act, int64_t column_limit);
// y = conv2d(x, w) + bias (bias may be null), queued on `stream` (cuBLAS's stream must be it); scratch holds
// plan.scratch_bytes (unused for the direct path).
void conv2d_forward(cublasHandle_t cublas, cudaStream_t stream, const Conv2dShape& s, const Conv2dPlan& plan, void* y,
                    const void* x, DType act, const float* w, const float* bias, void* scratch);

}  // namespace omni::cuda
