// The training ops of CpuBackend: the f32 kernels of linear_backward.h, rmsnorm_backward.h, attention_backward.h,
// silu_mul_backward.h and masked_mse_loss_backward.h (shapes and dtypes are checked by backend.cpp).
#include "backends/cpu/attention_backward.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/linear_backward.h"
#include "backends/cpu/masked_mse_loss_backward.h"
#include "backends/cpu/rmsnorm_backward.h"
#include "backends/cpu/silu_mul_backward.h"
#include "core/thread_pool.h"

namespace omni {

void CpuBackend::linear_dense_impl(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* bias) {
  const int64_t N = w.dim(0), K = w.dim(1), M = x.numel() / K;
  omni::linear_forward_train(y.data<float>(), x.data<float>(), w.data<float>(), M, K, N);
  if (!bias) return;
  float* out = y.data<float>();
  const float* b = bias->data<float>();
  parallel_for(0, M, 64, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m)
      for (int64_t n = 0; n < N; ++n) out[m * N + n] += b[n];
  });
}

void CpuBackend::linear_backward_impl(Tensor* dx, Tensor* dw, const Tensor& dy, const Tensor& x, const Tensor& w,
                                      bool accumulate_dx, bool accumulate_dw) {
  const int64_t N = w.dim(0), K = w.dim(1), M = x.numel() / K;
  omni::linear_backward(dx ? dx->data<float>() : nullptr, dw ? dw->data<float>() : nullptr, dy.data<float>(),
                        x.data<float>(), w.data<float>(), M, K, N, accumulate_dx, accumulate_dw);
}

void CpuBackend::rms_norm_backward_impl(Tensor& dx, Tensor* dweight, const Tensor& dy, const Tensor& x,
                                        const Tensor& weight, const Tensor& rstd, bool accumulate_dx) {
  const int64_t D = x.dim(-1), rows = x.numel() / D;
  omni::rmsnorm_backward(dx.data<float>(), dweight ? dweight->data<float>() : nullptr, dy.data<float>(),
                         x.data<float>(), weight.data<float>(), rstd.data<float>(), rows, D, accumulate_dx);
}

void CpuBackend::attention_backward_impl(Tensor& dq, Tensor& dk, Tensor& dv, const Tensor& dout, const Tensor& q,
                                         const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                                         const AttentionRows& rows) {
  const int64_t hd = q.dim(-1), Hq = q.dim(-2);
  omni::attention_backward(dq.data<float>(), dk.data<float>(), dv.data<float>(), dout.data<float>(),
                           q.data<float>(), k.data<float>(), v.data<float>(), out.data<float>(), lse.data<float>(),
                           k.dim(0), k.dim(1), Hq, k.dim(2), hd, rows.mask == AttentionMask::Causal);
}

void CpuBackend::silu_mul_backward_impl(Tensor& dgate, Tensor& dup, const Tensor& dy, const Tensor& gate,
                                        const Tensor& up) {
  omni::silu_mul_backward(dgate.data<float>(), dup.data<float>(), dy.data<float>(), gate.data<float>(),
                          up.data<float>(), gate.numel());
}

double CpuBackend::masked_mse_loss_impl(const Tensor& y, const Tensor& ref, const Tensor& mask, Tensor* dy,
                                        double dloss) {
  const int64_t D = y.dim(-1), rows = y.numel() / D;
  const double loss = masked_mse_loss_forward(y.data<float>(), ref.data<float>(), mask.data<uint8_t>(), rows, D);
  if (dy)
    omni::masked_mse_loss_backward(dy->data<float>(), y.data<float>(), ref.data<float>(), mask.data<uint8_t>(), rows,
                                   D, dloss);
  return loss;
}

}  // namespace omni
