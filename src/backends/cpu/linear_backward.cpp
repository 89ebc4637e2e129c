#include "backends/cpu/linear_backward.h"

#include <type_traits>

#include "backends/cpu/gemm_f32.h"

namespace omni {

template <class T>
void linear_forward_train(T* y, const T* x, const T* w, int64_t M, int64_t K, int64_t N) {
  if constexpr (std::is_same_v<T, float>) {
    gemm_f32(false, true, M, N, K, x, K, w, K, y, N, false);
  } else {
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        T s = 0;
        for (int64_t k = 0; k < K; ++k) s += x[m * K + k] * w[n * K + k];
        y[m * N + n] = s;
      }
  }
}

template <class T>
void linear_backward(T* dx, T* dw, const T* dy, const T* x, const T* w, int64_t M, int64_t K, int64_t N,
                     bool accumulate_dx, bool accumulate_dw) {
  if constexpr (std::is_same_v<T, float>) {
    if (dx) gemm_f32(false, false, M, K, N, dy, N, w, K, dx, K, accumulate_dx);
    if (dw) gemm_f32(true, false, N, K, M, dy, N, x, K, dw, K, accumulate_dw);
  } else {
    if (dx)
      for (int64_t m = 0; m < M; ++m)
        for (int64_t k = 0; k < K; ++k) {
          T s = accumulate_dx ? dx[m * K + k] : T(0);
          for (int64_t n = 0; n < N; ++n) s += dy[m * N + n] * w[n * K + k];
          dx[m * K + k] = s;
        }
    if (dw)
      for (int64_t n = 0; n < N; ++n)
        for (int64_t k = 0; k < K; ++k) {
          T s = accumulate_dw ? dw[n * K + k] : T(0);
          for (int64_t m = 0; m < M; ++m) s += dy[m * N + n] * x[m * K + k];
          dw[n * K + k] = s;
        }
  }
}

template void linear_forward_train<float>(float*, const float*, const float*, int64_t, int64_t, int64_t);
template void linear_forward_train<double>(double*, const double*, const double*, int64_t, int64_t, int64_t);
template void linear_backward<float>(float*, float*, const float*, const float*, const float*, int64_t, int64_t,
                                     int64_t, bool, bool);
template void linear_backward<double>(double*, double*, const double*, const double*, const double*, int64_t,
                                      int64_t, int64_t, bool, bool);

}  // namespace omni
