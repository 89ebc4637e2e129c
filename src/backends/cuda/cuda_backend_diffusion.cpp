// The CUDA backend's diffusion-transformer, text-encoder and VAE ops (backend.h): each a launcher of
// kernels/diffusion_ops.cu, attention_bias.cu or image_ops.cu; conv2d through conv2d.h.
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/conv2d.h"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/kernels/kernels.h"

namespace omni::cuda {

void CudaBackend::silu_impl(Tensor& y, const Tensor& x) {
  launch_silu(y.raw(), x.raw(), y.numel(), y.dtype(), stream_);
}

void CudaBackend::gated_add_impl(Tensor& y, const Tensor& x, const Tensor& gate, const Tensor& h) {
  launch_gated_add(y.raw(), x.raw(), gate.raw(), h.raw(), x.dim(0), x.dim(1), x.dim(2), y.dtype(), stream_);
}

void CudaBackend::rope_interleaved_impl(Tensor& x, const Tensor& cos, const Tensor& sin) {
  launch_rope_interleaved(x.raw(), cos.data<float>(), sin.data<float>(), x.dim(0), x.dim(1), x.dim(2), x.dtype(),
                          stream_);
}

void CudaBackend::quick_gelu_impl(Tensor& y, const Tensor& x) {
  launch_quick_gelu(y.raw(), x.raw(), y.numel(), y.dtype(), stream_);
}

void CudaBackend::mul_impl(Tensor& y, const Tensor& a, const Tensor& b) {
  launch_mul(y.raw(), a.raw(), b.raw(), y.numel(), y.dtype(), stream_);
}

void CudaBackend::attention_with_bias_impl(Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
                                           const Tensor& bias, float scale) {
  launch_attention_with_bias(out.raw(), q.raw(), k.raw(), v.raw(), bias.data<float>(), q.dim(0), q.dim(1), k.dim(1),
                             q.dim(2), q.dim(3), bias.ndim() == 4, scale, q.dtype(), stream_);
}

// conv2d.h says how (a direct kernel for few output channels, else column matrices and cuBLAS).
void CudaBackend::conv2d_impl(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias, int64_t padding) {
  const Conv2dShape s{x.dim(0), x.dim(1), x.dim(2), x.dim(3), w.dim(0), w.dim(2), w.dim(3), padding};
  const Conv2dPlan plan = plan_conv2d(s, x.dtype(), conv2d_column_limit());
  Tensor scratch;
  if (plan.scratch_bytes > 0) scratch = alloc({plan.scratch_bytes}, DType::U8);
  conv2d_forward(cublas_, stream_, s, plan, y.raw(), x.raw(), x.dtype(), w.data<float>(),
                 bias ? bias->data<float>() : nullptr, plan.scratch_bytes > 0 ? scratch.raw() : nullptr);
}

void CudaBackend::group_norm_impl(Tensor& y, const Tensor& x, int64_t groups, float eps, const Tensor* weight,
                                  const Tensor* bias) {
  const int64_t B = x.dim(0), C = x.dim(1), S = x.numel() / (B * C);
  const GroupNormPlan plan = plan_group_norm(B, C, S, groups);
  Tensor scratch = alloc({plan.scratch_floats}, DType::F32);
  launch_group_norm(y.raw(), x.raw(), x.dtype(), B, C, S, groups, eps, weight ? weight->data<float>() : nullptr,
                    bias ? bias->data<float>() : nullptr, plan, scratch.data<float>(), stream_);
}

void CudaBackend::upsample_nearest2x_impl(Tensor& y, const Tensor& x) {
  const int64_t H = x.dim(-2), W = x.dim(-1);
  launch_upsample_nearest2x(y.raw(), x.raw(), dtype_size(x.dtype()), x.numel() / (H * W), H, W, stream_);
}

void CudaBackend::transpose_impl(Tensor& y, const Tensor& x) {
  const int64_t M = x.dim(-2), N = x.dim(-1);
  launch_transpose_last2(y.raw(), x.raw(), dtype_size(x.dtype()), x.numel() / (M * N), M, N, stream_);
}

}  // namespace omni::cuda
