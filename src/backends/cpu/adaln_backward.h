// The adaLN-Zero pieces of a diffusion-transformer block for training, forward and backward as pairs, x and
// dy [B, T, D] with one vector [B, D] per sample broadcast over its T tokens:
//   modulate:   y = x · (1 + scale) + shift;  dx = dy · (1 + scale), dscale = Σ_t dy ⊙ x, dshift = Σ_t dy
//   gated_add:  y = x + gate · h;             dh = dy · gate, dgate = Σ_t dy ⊙ h   (and ∂L/∂x = dy)
//   gelu_tanh:  y = 0.5 x (1 + tanh(u)), u = √(2/π)(x + 0.044715 x³);
//               dx = dy · (0.5 (1 + tanh u) + 0.5 x (1 − tanh² u) √(2/π)(1 + 3 · 0.044715 x²))
// The per-sample sums run in double. The forwards (for T = float bit-identical to elementwise.cpp's) exist for
// the gradient checks.
#pragma once

#include <cstdint>

namespace omni {

template <class T>
void modulate_forward_train(T* y, const T* x, const T* scale, const T* shift, int64_t B, int64_t T_, int64_t D);
// dx may alias dy. dscale and dshift [B, D] are overwritten.
template <class T>
void modulate_backward(T* dx, T* dscale, T* dshift, const T* dy, const T* x, const T* scale, int64_t B, int64_t T_,
                       int64_t D);

template <class T>
void gated_add_forward_train(T* y, const T* x, const T* gate, const T* h, int64_t B, int64_t T_, int64_t D);
// dh may alias dy. dgate [B, D] is overwritten.
template <class T>
void gated_add_backward(T* dgate, T* dh, const T* dy, const T* gate, const T* h, int64_t B, int64_t T_, int64_t D);

template <class T>
void gelu_tanh_forward_train(T* y, const T* x, int64_t n);
// dx may alias dy.
template <class T>
void gelu_tanh_backward(T* dx, const T* dy, const T* x, int64_t n);

}  // namespace omni
