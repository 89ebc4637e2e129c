#include "backends/cuda/conv2d.h"

#include <algorithm>
#include <cstdlib>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/kernels/kernels.h"

namespace omni::cuda {
namespace {

constexpr int64_t kMaxColumnElems = int64_t{1} << 26;

cudaDataType_t matrix_type(DType d) {
  switch (d) {
    case DType::F32: return CUDA_R_32F;
    case DType::BF16: return CUDA_R_16BF;
    case DType::F16: return CUDA_R_16F;
    default: OMNI_FAIL("conv2d: no cuBLAS matrix type for ", dtype_name(d));
  }
}

int gemm_dim(int64_t v, const char* what) {
  OMNI_CHECK(v >= 0 && v <= INT32_MAX, "conv2d: ", what, " = ", v, " exceeds the 32-bit sizes cuBLAS takes");
  return static_cast<int>(v);
}

int64_t aligned256(int64_t bytes) { return (bytes + 255) / 256 * 256; }

}  // namespace

int64_t conv2d_column_limit() {
  const char* e = std::getenv("OMNI_CUDA_CONV2D_BAND_ELEMS");
  if (!e || !*e) return kMaxColumnElems;
  char* end = nullptr;
  const long long v = std::strtoll(e, &end, 10);
  OMNI_CHECK(end && *end == 0 && v > 0, "OMNI_CUDA_CONV2D_BAND_ELEMS must be a positive integer, found \"", e, "\"");
  return std::min<int64_t>(v, kMaxColumnElems);
}

Conv2dPlan plan_conv2d(const Conv2dShape& s, DType act, int64_t column_limit) {
  Conv2dPlan p;
  if (s.Cout <= kMaxDirectCout) return p;  // Path::Direct
  const int64_t K = s.Cin * s.kh * s.kw, Ho = s.Ho(), Wo = s.Wo(), es = static_cast<int64_t>(dtype_size(act));
  p.weight_elems = act == DType::F32 ? 0 : s.Cout * K;
  const int64_t per_row = K * Wo;  // column-matrix elements of one output row
  if (s.kh == 1 && s.kw == 1 && s.pad == 0) {
    p.path = Conv2dPlan::Path::Gemm1x1;
  } else if (per_row * Ho <= column_limit) {
    p.path = Conv2dPlan::Path::WholeImages;
    p.images_per_gemm = std::clamp<int64_t>(column_limit / (per_row * Ho), 1, s.B);
    p.column_elems = p.images_per_gemm * per_row * Ho;
  } else {
    p.path = Conv2dPlan::Path::Bands;
    const int64_t rows_fit = std::max<int64_t>(1, column_limit / per_row);
    const int64_t bands = (Ho + rows_fit - 1) / rows_fit;
    p.band_rows = (Ho + bands - 1) / bands;  // balanced
    p.column_elems = p.band_rows * per_row;
  }
  p.scratch_bytes = aligned256(p.weight_elems * es) + aligned256(p.column_elems * es);
  return p;
}

void conv2d_forward(cublasHandle_t cublas, cudaStream_t stream, const Conv2dShape& s, const Conv2dPlan& plan, void* y,
                    const void* x, DType act, const float* w, const float* bias, void* scratch) {
  const int64_t Ho = s.Ho(), Wo = s.Wo(), P = Ho * Wo, K = s.Cin * s.kh * s.kw;
  if (plan.path == Conv2dPlan::Path::Direct) {
    launch_conv2d_direct(y, x, act, w, bias, s.B, s.Cin, s.H, s.W, s.Cout, s.kh, s.kw, s.pad, stream);
    return;
  }
  const int64_t es = static_cast<int64_t>(dtype_size(act));
  char* sp = static_cast<char*>(scratch);
  const void* wt = w;
  if (plan.weight_elems > 0) {
    launch_convert(sp, act, w, DType::F32, plan.weight_elems, stream);
    wt = sp;
  }
  void* col = sp + aligned256(plan.weight_elems * es);
  if (bias) launch_fill_channels(y, act, bias, s.B, s.Cout, P, stream);
  const float one = 1.f, beta = bias ? 1.f : 0.f;
  const cudaDataType_t t = matrix_type(act);
  char* y0 = static_cast<char*>(y);
  const char* x0 = static_cast<const char*>(x);
  // y[b0 .. b0 + nb) from column matrices (or x) `a` of k rows, images a_stride elements apart.
  auto batched = [&](const void* a, int64_t a_stride, int64_t k, int64_t b0, int64_t nb) {
    OMNI_CUBLAS(cublasGemmStridedBatchedEx(cublas, CUBLAS_OP_N, CUBLAS_OP_N, gemm_dim(P, "pixels"),
                                           gemm_dim(s.Cout, "Cout"), gemm_dim(k, "K"), &one, a, t,
                                           gemm_dim(P, "pixels"), a_stride, wt, t, gemm_dim(k, "K"), 0, &beta,
                                           y0 + b0 * s.Cout * P * es, t, gemm_dim(P, "pixels"), s.Cout * P,
                                           gemm_dim(nb, "images"), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  };
  const int64_t image = s.Cin * s.H * s.W;  // elements of one input image
  switch (plan.path) {
    case Conv2dPlan::Path::Gemm1x1: batched(x, s.Cin * P, s.Cin, 0, s.B); return;
    case Conv2dPlan::Path::WholeImages:
      for (int64_t b0 = 0; b0 < s.B; b0 += plan.images_per_gemm) {
        const int64_t nb = std::min(plan.images_per_gemm, s.B - b0);
        launch_im2col(col, x0 + b0 * image * es, act, nb, s.Cin, s.H, s.W, s.kh, s.kw, s.pad, Wo, 0, Ho, stream);
        batched(col, K * P, K, b0, nb);
      }
      return;
    case Conv2dPlan::Path::Bands:
      for (int64_t b = 0; b < s.B; ++b)
        for (int64_t r0 = 0; r0 < Ho; r0 += plan.band_rows) {
          const int64_t rows = std::min(plan.band_rows, Ho - r0), n = rows * Wo;
          launch_im2col(col, x0 + b * image * es, act, 1, s.Cin, s.H, s.W, s.kh, s.kw, s.pad, Wo, r0, rows, stream);
          OMNI_CUBLAS(cublasGemmEx(cublas, CUBLAS_OP_N, CUBLAS_OP_N, gemm_dim(n, "band pixels"),
                                   gemm_dim(s.Cout, "Cout"), gemm_dim(K, "K"), &one, col, t, gemm_dim(n, "band pixels"),
                                   wt, t, gemm_dim(K, "K"), &beta, y0 + (b * s.Cout * P + r0 * Wo) * es, t,
                                   gemm_dim(P, "pixels"), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        }
      return;
    case Conv2dPlan::Path::Direct: return;
  }
}

}  // namespace omni::cuda
