// SiLU-gated product of the Qwen3 MLP for training, forward and backward as a pair:
//   forward:  y = silu(g) · u,  silu(g) = g · σ(g)
//   backward: dg = dy · u · σ(g) · (1 + g · (1 − σ(g))),  du = dy · silu(g)
// Nothing extra is saved: the backward recomputes σ(g) from the saved inputs g and u.
#pragma once

#include <cstdint>

namespace omni {

template <class T>
void silu_mul_forward_train(T* y, const T* gate, const T* up, int64_t n);

// dgate / dup may alias dy (written after dy is read, element by element).
template <class T>
void silu_mul_backward(T* dgate, T* dup, const T* dy, const T* gate, const T* up, int64_t n);

}  // namespace omni
