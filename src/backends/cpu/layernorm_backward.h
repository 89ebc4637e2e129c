// LayerNorm without affine (FLUX's adaLN norms) for training, forward and backward as a pair, over the last dim:
//   forward:  m = mean(x), r = 1 / sqrt(mean((x − m)²) + eps),  y = (x − m) · r
//   backward: dx = r · (dy − mean(dy) − y · mean(dy ⊙ y))
// Nothing is saved: the backward recomputes m and r from x exactly as the forward computes them (the statistics
// in double, then r in T), so the two see the same normalised values.
#pragma once

#include <cstdint>

namespace omni {

// y may alias x. For T = float, bit-identical to layernorm_forward without affine (layernorm.cpp).
template <class T>
void layernorm_forward_train(T* y, const T* x, int64_t rows, int64_t dim, float eps);

// dx may alias dy unless accumulate_dx (which adds the input gradient to dx instead of overwriting it).
template <class T>
void layernorm_backward(T* dx, const T* dy, const T* x, int64_t rows, int64_t dim, float eps, bool accumulate_dx);

}  // namespace omni
