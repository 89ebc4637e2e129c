// The diffusion transformers' backward ops of CpuBackend: the f32 kernels of layernorm_backward.h,
// adaln_backward.h and rope_interleaved_backward.h (shapes and dtypes are checked by backend.cpp).
#include "backends/cpu/adaln_backward.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/layernorm_backward.h"
#include "backends/cpu/rope_interleaved_backward.h"

namespace omni {

void CpuBackend::layer_norm_backward_impl(Tensor& dx, const Tensor& dy, const Tensor& x, float eps,
                                          bool accumulate_dx) {
  const int64_t D = x.dim(-1);
  omni::layernorm_backward(dx.data<float>(), dy.data<float>(), x.data<float>(), x.numel() / D, D, eps, accumulate_dx);
}

void CpuBackend::gelu_tanh_backward_impl(Tensor& dx, const Tensor& dy, const Tensor& x) {
  omni::gelu_tanh_backward(dx.data<float>(), dy.data<float>(), x.data<float>(), x.numel());
}

void CpuBackend::modulate_backward_impl(Tensor& dx, Tensor& dscale, Tensor& dshift, const Tensor& dy, const Tensor& x,
                                        const Tensor& scale) {
  omni::modulate_backward(dx.data<float>(), dscale.data<float>(), dshift.data<float>(), dy.data<float>(),
                          x.data<float>(), scale.data<float>(), x.dim(0), x.dim(1), x.dim(2));
}

void CpuBackend::gated_add_backward_impl(Tensor& dgate, Tensor& dh, const Tensor& dy, const Tensor& gate,
                                         const Tensor& h) {
  omni::gated_add_backward(dgate.data<float>(), dh.data<float>(), dy.data<float>(), gate.data<float>(),
                           h.data<float>(), h.dim(0), h.dim(1), h.dim(2));
}

void CpuBackend::rope_interleaved_backward_impl(Tensor& dx, const Tensor& cos, const Tensor& sin) {
  omni::rope_interleaved_backward(dx.data<float>(), cos.data<float>(), sin.data<float>(), dx.dim(0), dx.dim(1),
                                  dx.dim(2));
}

}  // namespace omni
