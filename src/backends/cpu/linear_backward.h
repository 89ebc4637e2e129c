// Linear layer without bias for training, forward and backward as a pair (llm.c style):
//   forward:  y[M, N] = x[M, K] · W[N, K]ᵀ
//   backward: dX[M, K] (+)= dY[M, N] · W[N, K],   dW[N, K] (+)= dY[M, N]ᵀ · X[M, K]
// T = float runs the cache-blocked multithreaded gemm_f32 (f32 accumulation); T = double is a plain reference
// for finite-difference tests. The forward saves nothing: the backward needs x and W, which the caller keeps.
#pragma once

#include <cstdint>

namespace omni {

template <class T>
void linear_forward_train(T* y, const T* x, const T* w, int64_t M, int64_t K, int64_t N);

// dx and dw may each be null (not wanted). accumulate_dx / accumulate_dw: add to the buffer instead of
// overwriting it (several consumers of one input, or gradient accumulation).
template <class T>
void linear_backward(T* dx, T* dw, const T* dy, const T* x, const T* w, int64_t M, int64_t K, int64_t N,
                     bool accumulate_dx, bool accumulate_dw);

}  // namespace omni
