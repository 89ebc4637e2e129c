// RMSNorm over the last dim for training, forward and backward as a pair (also the per-head q/k norms: rows =
// tokens × heads, dim = head_dim):
//   forward:  r = 1 / sqrt(mean(x²) + eps),  y = (x · r) · w      (saves r per row)
//   backward: dx = r · (w ⊙ dy) − x · r³ / dim · Σ_j w_j dy_j x_j,   dw += Σ_rows dy ⊙ x · r
// The f32 forward follows the inference kernel (rmsnorm.cpp) step by step: mean of squares in double, then f32.
#pragma once

#include <cstdint>

namespace omni {

// y may alias x. rstd receives r for each of the `rows` rows.
template <class T>
void rmsnorm_forward_train(T* y, T* rstd, const T* x, const T* weight, int64_t rows, int64_t dim, float eps);

// dx may alias dy. dweight may be null (norm weights are not tuned by AutoRound); when given it is added to.
// accumulate_dx adds the input gradient to dx instead of overwriting it (dx must not alias dy then).
template <class T>
void rmsnorm_backward(T* dx, T* dweight, const T* dy, const T* x, const T* weight, const T* rstd, int64_t rows,
                      int64_t dim, bool accumulate_dx);

}  // namespace omni
